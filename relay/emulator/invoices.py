"""Smart invoices (``entityTypeId`` 31): records, writes, funnels and stages.

Fields a read returns — ``api-reference/crm/universal/object-fields.md`` ("Invoice": ``xmlId``,
``title``, ``accountNumber``, ``categoryId``, ``stageId``, ``previousStageId``, ``begindate``,
``closedate``, ``companyId``, ``contactId(s)``, ``opportunity``, ``isManualOpportunity``,
``taxValue``, ``currencyId``, ``mycompanyId``, ``sourceId``, ``comments``, ``observers``…, plus the
common ones).  Fields a write takes, with defaults (``title`` "Invoice #<id>", ``begindate`` today,
``closedate`` +7 days, first stage of the funnel) — ``api-reference/crm/universal/crm-item-add.md`` /
``crm-item-update.md`` ("Invoice").  Stage ids ``DT31_<categoryId>:<STATUS>`` (e.g. ``DT31_13:N``),
listed by ``crm.status.list`` ``ENTITY_ID`` = ``SMART_INVOICE_STAGE_<categoryId>``, funnels by
``crm.category.list`` ``entityTypeId`` 31 — same pages.  Owner type of the product rows: ``SI``
(``api-reference/crm/universal/invoice.md``, ``crm-enum-owner-type.md``).

Invoices have **no** ``originatorId``/``originId``: object-fields.md lists them only for leads,
deals, contacts and companies.  Written ones are ignored and filtering on them is
``INVALID_ARG_VALUE`` (``crm-item-list.md``); stamp invoices with ``xmlId`` ("External code").

UNVERIFIED: ``accountNumber`` is writable (object-fields.md lists it; the add/update tables do not),
default ``str(id)``; the stage names ``N``/``S``/``P``/``D`` (New, Sent, Paid, Declined) beyond
``DT31_13:N`` = New; ``P`` success and ``D`` failure semantics.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from relay.emulator.core import EmuError
from relay.emulator.state import PortalState
from relay.emulator.values import floatval, intval, iso, parse_datetime, php_str

INVOICE = 31
#: fields ``crm.item.add/update`` write, with their kind — ``crm-item-add.md`` / ``crm-item-update.md``
WRITABLE: dict[str, str] = {
    "title": "str", "xmlId": "str", "assignedById": "user", "opened": "yn", "webformId": "int",
    "begindate": "date", "closedate": "date", "companyId": "int", "contactId": "int", "contactIds": "ids",
    "observers": "ids", "stageId": "str", "categoryId": "int", "sourceId": "str", "sourceDescription": "str",
    "currencyId": "currency", "isManualOpportunity": "yn", "opportunity": "float", "taxValue": "float",
    "mycompanyId": "int", "comments": "str", "locationId": "str", "parentId2": "int",
    "accountNumber": "str",  # UNVERIFIED (module docstring)
}
#: every field of a stored invoice, in ``crm.item.get`` order — object-fields.md ("Common", "Invoice")
FIELDS: tuple[str, ...] = (
    "id", "xmlId", "title", "accountNumber", "createdBy", "updatedBy", "movedBy", "createdTime",
    "updatedTime", "movedTime", "categoryId", "stageId", "previousStageId", "stageSemanticId", "closed",
    "opened", "webformId", "assignedById", "begindate", "closedate", "companyId", "contactId", "contactIds",
    "observers", "mycompanyId", "sourceId", "sourceDescription", "currencyId", "isManualOpportunity",
    "opportunity", "taxValue", "comments", "locationId", "parentId2", "lastActivityBy", "lastActivityTime",
    "entityTypeId",
)
_STAGE_NAMES = {"N": "New", "S": "Sent", "P": "Paid", "D": "Declined"}


def bad_value(field: str) -> EmuError:
    """``CRM_FIELD_ERROR_VALUE_NOT_VALID`` — ``crm-item-add.md``, ``crm-item-update.md``."""
    return EmuError(400, "CRM_FIELD_ERROR_VALUE_NOT_VALID", f'Invalid value for field "{field}"')


def _value(state: PortalState, name: str, kind: str, value: Any) -> Any:
    if kind == "int":
        return intval(value) if value not in (None, "") else 0
    if kind == "float":
        return floatval(value)
    if kind == "yn":
        return "Y" if php_str(value).upper() in ("Y", "1", "TRUE") else "N"
    if kind == "ids":
        return [intval(v) for v in (value if isinstance(value, list) else [value]) if intval(v) > 0]
    if kind == "user":
        if intval(value) not in state.config.users:
            raise bad_value(name)
        return intval(value)
    if kind == "currency":
        if php_str(value).upper() not in state.config.currencies:
            raise bad_value(name)
        return php_str(value).upper()
    if kind == "date":
        if value in (None, ""):
            return None
        moment = parse_datetime(value, state.tz)
        if moment is None:
            raise bad_value(name)
        return iso(moment.replace(hour=0, minute=0, second=0, microsecond=0))
    return None if value is None else php_str(value)


def write(state: PortalState, record: dict[str, Any], fields: Mapping[str, Any]) -> None:
    """Validate ``fields`` (unknown names ignored) and apply them to ``record`` in place."""
    clean = {n: _value(state, n, WRITABLE[n], v) for n, v in fields.items() if n in WRITABLE}
    category = clean.get("categoryId", record["categoryId"])
    if category not in state.invoice_categories:
        raise bad_value("categoryId")
    stages = state.invoice_categories[category]
    if "stageId" in clean and clean["stageId"] not in stages:
        raise bad_value("stageId")
    if category != record["categoryId"] and "stageId" not in clean:
        clean["stageId"] = stages[0]
    if "contactIds" in clean:
        clean["contactId"] = clean["contactIds"][0] if clean["contactIds"] else 0
    if "accountNumber" in clean and not clean["accountNumber"]:
        del clean["accountNumber"]
    if "stageId" in clean and clean["stageId"] != record["stageId"]:
        now, user = iso(state.now()), state.config.user_id
        record.update(previousStageId=record["stageId"], movedTime=now, movedBy=user)
    record.update(clean)
    status = php_str(record["stageId"]).rsplit(":", 1)[-1]
    record["stageSemanticId"] = "S" if status == "P" else "F" if status == "D" else "P"
    record["closed"] = "N" if record["stageSemanticId"] == "P" else "Y"


def add(state: PortalState, fields: Mapping[str, Any]) -> int:
    """Create an invoice with the documented defaults; returns its id — ``crm-item-add.md``."""
    invoice_id = state.next_id("invoice")
    now = state.now()
    user = state.config.user_id
    category = min(state.invoice_categories)
    today = now.replace(hour=0, minute=0, second=0)
    record: dict[str, Any] = dict.fromkeys(FIELDS)
    record.update({
        "id": invoice_id, "title": f"Invoice #{invoice_id}", "accountNumber": str(invoice_id),
        "createdBy": user, "updatedBy": user, "movedBy": user, "createdTime": iso(now), "updatedTime": iso(now),
        "movedTime": iso(now), "categoryId": category, "stageId": state.invoice_categories[category][0],
        "stageSemanticId": "P", "closed": "N", "opened": "Y", "webformId": 0, "assignedById": user,
        "begindate": iso(today), "closedate": iso(today + timedelta(days=7)),
        "companyId": 0, "contactId": 0, "contactIds": [], "observers": [], "mycompanyId": 0,
        "currencyId": state.config.currency, "isManualOpportunity": "N", "opportunity": 0.0, "taxValue": 0.0,
        "parentId2": 0, "lastActivityBy": user, "lastActivityTime": iso(now), "entityTypeId": INVOICE,
    })
    write(state, record, fields)
    record["previousStageId"] = None
    state.invoices[invoice_id] = record
    state.invoice_rows.setdefault(invoice_id, [])
    return invoice_id


def update(state: PortalState, invoice_id: int, fields: Mapping[str, Any]) -> None:
    """Apply ``fields`` to a stored invoice (all or nothing) — ``crm-item-update.md``."""
    record = dict(state.invoices[invoice_id])
    write(state, record, fields)
    record["updatedTime"] = iso(state.now())
    record["updatedBy"] = state.config.user_id
    state.invoices[invoice_id] = record


def categories(state: PortalState) -> list[dict[str, Any]]:
    """Invoice funnels as ``crm.category.list`` shows them — ``category/crm-category-list.md``."""
    default = min(state.invoice_categories)
    return [{"id": cat, "name": "General" if cat == default else f"Invoices {cat}", "sort": (i + 1) * 100,
             "entityTypeId": INVOICE, "isDefault": "Y" if cat == default else "N", "originId": "",
             "originatorId": ""} for i, cat in enumerate(sorted(state.invoice_categories))]


def stage_rows(state: PortalState, first_id: int) -> list[dict[str, Any]]:
    """``crm.status.list`` rows of every invoice funnel (``SMART_INVOICE_STAGE_<category>``)."""
    rows: list[dict[str, Any]] = []
    for cat, stages in sorted(state.invoice_categories.items()):
        for i, stage in enumerate(stages):
            status = stage.rsplit(":", 1)[-1]
            semantic = "S" if status == "P" else "F" if status == "D" else None
            rows.append({
                "ID": str(first_id + len(rows)), "ENTITY_ID": f"SMART_INVOICE_STAGE_{cat}", "STATUS_ID": stage,
                "NAME": _STAGE_NAMES.get(status, status), "NAME_INIT": "", "SORT": str((i + 1) * 10),
                "SYSTEM": "Y" if i == 0 or semantic else "N", "CATEGORY_ID": str(cat), "COLOR": "#39A8EF",
                "SEMANTICS": semantic, "EXTRA": {"SEMANTICS": {"S": "success", "F": "failure"}.get(
                    semantic or "", "process"), "COLOR": "#39A8EF"},
            })
    return rows
