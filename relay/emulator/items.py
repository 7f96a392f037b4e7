"""REST methods ``crm.item.get/list/add/update/delete`` for deals (2) and smart invoices (31),
plus ``crm.category.list`` / ``crm.status.list`` for invoice funnels and ``crm.enum.ownertype``.

Deals are the same records ``crm.deal.*`` uses, seen in camelCase (:mod:`relay.emulator.itemfields`);
``crm.item.update`` may move a deal to another funnel with ``categoryId`` (``crm.deal.update``
cannot — ``api-reference/crm/deals/crm-deal-update.md``) and fires ``ONCRMDEALMOVETOCATEGORY``, not
``ONCRMDEALUPDATE`` (``api-reference/crm/deals/events/on-crm-deal-move-to-category.md``).
Replies ``{"item": {...}}`` / ``{"items": [...]}``, ``crm.item.delete`` -> ``[]``, errors ``NOT_FOUND``
(HTTP 400) for an unknown type or id, ``CRM_FIELD_ERROR_VALUE_NOT_VALID`` for a bad value —
``api-reference/crm/universal/crm-item-{get,list,add,update,delete}.md``.  Smart invoices live in
:mod:`relay.emulator.invoices` (no ``originatorId``/``originId`` there: filter on ``xmlId``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from relay.emulator import crm_methods, deal_contacts, deals, files, invoices, itemfields, itemlist
from relay.emulator.core import EmuError, Reply, param
from relay.emulator.invoices import INVOICE, bad_value
from relay.emulator.state import PortalState
from relay.emulator.values import floatval, intval, php_str, strict_id

Handler = Callable[[PortalState, Mapping[str, Any]], Reply]
DEAL = 2

#: ``crm.enum.ownertype`` — ``api-reference/crm/auxiliary/enum/crm-enum-owner-type.md``
OWNER_TYPES: list[dict[str, Any]] = [
    {"ID": i, "NAME": n, "SYMBOL_CODE": c, "SYMBOL_CODE_SHORT": s} for i, n, c, s in (
        (1, "Lead", "LEAD", "L"), (2, "Deal", "DEAL", "D"), (3, "Contact", "CONTACT", "C"),
        (4, "Company", "COMPANY", "CO"), (5, "Invoice (old version)", "INVOICE", "I"),
        (31, "Invoice", "SMART_INVOICE", "SI"), (7, "Quote", "QUOTE", "Q"),
        (8, "Billing Details", "REQUISITE", "RQ"))
]


def item_not_found() -> EmuError:
    """``NOT_FOUND`` for a missing item — ``crm-item-get.md``."""
    return EmuError(400, "NOT_FOUND", "Element not found")


def entity_type(params: Mapping[str, Any]) -> int:
    """``entityTypeId`` 2 or 31; anything else is ``NOT_FOUND`` ("SPA not found")."""
    type_id = intval(params.get("entityTypeId"))
    if type_id not in (DEAL, INVOICE):
        raise EmuError(400, "NOT_FOUND", "Smart process not found")
    return type_id


def _original(params: Mapping[str, Any]) -> bool:
    return php_str(params.get("useOriginalUfNames")).upper() == "Y"


def _uf_typed(state: PortalState, name: str, value: Any) -> Any:
    kind = state.config.uf_fields[name]
    if isinstance(value, list):
        return [_uf_typed_one(kind, v) for v in value]
    return _uf_typed_one(kind, value)


def _uf_typed_one(kind: str, value: Any) -> Any:
    if value in (None, ""):
        return value
    if kind in ("integer", "employee", "enumeration"):
        return intval(value)
    if kind == "double":
        return floatval(value)
    if kind == "boolean":
        return "Y" if php_str(value) == "1" else "N"
    return value


def deal_view(state: PortalState, deal_id: int, original: bool) -> dict[str, Any]:
    """``crm.item.get`` of a deal (files as ``{id, url, urlMachine}``)."""
    record = state.deals[deal_id]

    def uf_value(name: str, value: Any) -> Any:
        if files.is_file_field(state, name):
            return files.item_value(state, deal_id, name, value)
        return _uf_typed(state, name, value)

    return itemfields.deal_item(state, record, original, uf_value)


def _invoice(state: PortalState, invoice_id: int) -> dict[str, Any]:
    record = state.invoices.get(invoice_id)
    if record is None:
        raise item_not_found()
    return record


def _view(state: PortalState, type_id: int, item_id: int, original: bool) -> dict[str, Any]:
    if type_id == DEAL:
        if item_id not in state.deals:
            raise item_not_found()
        return deal_view(state, item_id, original)
    return dict(_invoice(state, item_id))


def _id(params: Mapping[str, Any]) -> int:
    item_id = strict_id(params.get("id"))
    if item_id is None:
        raise item_not_found()
    return item_id


def _fields(params: Mapping[str, Any]) -> Mapping[str, Any]:
    fields = params.get("fields")
    if fields in (None, "", []):
        return {}
    if not isinstance(fields, Mapping):
        raise EmuError(400, "100", "Could not find value for parameter {fields}")
    return fields


def _as_item_error(exc: EmuError) -> EmuError:
    """Legacy validation (empty code) seen through ``crm.item.*`` carries a code."""
    return EmuError(400, "CRM_FIELD_ERROR_VALUE_NOT_VALID", exc.description) if not exc.code else exc


def _set_contacts(state: PortalState, deal_id: int, fields: Mapping[str, Any]) -> None:
    """``contactIds`` (or ``contactId`` alone) rebinds the deal's contacts (:mod:`deal_contacts`)."""
    raw = fields.get("contactIds", fields.get("contactId"))
    if "contactIds" in fields or "contactId" in fields:
        ids = [intval(v) for v in (raw if isinstance(raw, list) else [raw]) if intval(v) > 0]
        deal_contacts.set_ids(state, deal_id, ids if "contactIds" in fields else ids[:1])


def _deal_update(state: PortalState, deal_id: int, fields: Mapping[str, Any], original: bool) -> None:
    if deal_id not in state.deals:
        raise item_not_found()
    upper = itemfields.deal_fields_from_item(state, fields, original)
    category = upper.pop("CATEGORY_ID", None)
    current = intval(state.deals[deal_id]["CATEGORY_ID"])
    move: tuple[int, str | None] | None = None
    if category is not None and php_str(category) != "" and intval(category) != current:
        target = intval(category)
        if target not in state.config.categories:
            raise bad_value("categoryId")
        stage = upper.pop("STAGE_ID", None)
        if stage is not None and stage not in state.stages(target):
            raise bad_value("stageId")
        move = (target, stage)
    try:
        if upper:
            deals.update_deal(state, deal_id, upper, file_style="item")
    except EmuError as exc:
        raise _as_item_error(exc) from None
    if move is not None:
        deals.move_deal(state, deal_id, move[0], move[1])
    _set_contacts(state, deal_id, fields)


# -- handlers -------------------------------------------------------------------------------------

def item_get(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.item.get`` -> ``{"item": {...}}`` — ``api-reference/crm/universal/crm-item-get.md``."""
    type_id = entity_type(params)
    return Reply({"item": _view(state, type_id, _id(params), _original(params))})


def item_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.item.list`` -> ``{"items": [...]}`` + ``total``/``next`` — ``crm-item-list.md``."""
    type_id = entity_type(params)
    original = _original(params)
    if type_id == DEAL:
        views = [deal_view(state, k, original) for k in sorted(state.deals)]
        allowed: set[str] = set(itemfields.DEAL_FIELDS) | set(itemfields.uf_names(state, original)) | {"contactIds"}
    else:
        views = [dict(state.invoices[k]) for k in sorted(state.invoices)]
        allowed = set(invoices.FIELDS)
    matches = itemlist.build_filter(param(params, "filter"), allowed, state.tz)
    found = [v for v in views if matches(v)]
    itemlist.sort_records(found, itemlist.order_keys(param(params, "order"), allowed), state.tz)
    select = param(params, "select")
    names = [php_str(n) for n in select] if isinstance(select, list) else []
    if names and "*" not in names:
        found = [{k: v for k, v in item.items() if k == "id" or k in names} for item in found]
    return itemlist.page(found, param(params, "start"), "items")


def item_add(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.item.add`` -> ``{"item": {...}}`` — ``api-reference/crm/universal/crm-item-add.md``."""
    type_id = entity_type(params)
    fields = _fields(params)
    original = _original(params)
    if type_id == INVOICE:
        return Reply({"item": dict(state.invoices[invoices.add(state, fields)])})
    upper = itemfields.deal_fields_from_item(state, fields, original)
    category = upper.get("CATEGORY_ID")
    if category is not None and intval(category) not in state.config.categories:
        raise bad_value("categoryId")
    try:
        deal_id = deals.create_deal(state, upper, file_style="item")
    except EmuError as exc:
        raise _as_item_error(exc) from None
    _set_contacts(state, deal_id, fields)
    return Reply({"item": deal_view(state, deal_id, original)})


def item_update(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.item.update`` -> ``{"item": {...}}``; ``categoryId`` moves a deal — ``crm-item-update.md``."""
    type_id = entity_type(params)
    item_id = _id(params)
    fields = _fields(params)
    if type_id == DEAL:
        _deal_update(state, item_id, fields, _original(params))
    else:
        _invoice(state, item_id)
        invoices.update(state, item_id, fields)
    return Reply({"item": _view(state, type_id, item_id, _original(params))})


def item_delete(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.item.delete`` -> ``[]``; a deal's deletion fires ``ONCRMDEALDELETE`` — ``crm-item-delete.md``."""
    type_id = entity_type(params)
    item_id = _id(params)
    if type_id == DEAL:
        if item_id not in state.deals:
            raise item_not_found()
        deals.delete_deal(state, item_id)
    else:
        _invoice(state, item_id)
        del state.invoices[item_id]
        state.invoice_rows.pop(item_id, None)
    return Reply([])


def category_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.category.list`` for deals and smart invoices —
    ``api-reference/crm/universal/category/crm-category-list.md``."""
    if intval(params.get("entityTypeId", DEAL)) != INVOICE:
        return crm_methods.category_list(state, params)
    cats = invoices.categories(state)
    return Reply({"categories": cats}, total=len(cats))


def status_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.status.list`` with ``SMART_INVOICE_STAGE_<category>`` rows added —
    ``api-reference/crm/status/crm-status-list.md``, ``crm-item-update.md`` ("Invoice", ``stageId``)."""
    rows = list(crm_methods.status_list(state, {}).value)
    rows += invoices.stage_rows(state, len(rows) + 1)
    flt = param(params, "filter") or {}
    if isinstance(flt, Mapping):
        for key, wanted in flt.items():
            name = str(key).lstrip("=")
            rows = [r for r in rows if php_str(r.get(name)) == php_str(wanted)]
    return Reply(rows)


def enum_ownertype(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.enum.ownertype`` — ``api-reference/crm/auxiliary/enum/crm-enum-owner-type.md``."""
    return Reply([dict(t) for t in OWNER_TYPES])


HANDLERS: dict[str, Handler] = {
    "crm.item.get": item_get,
    "crm.item.list": item_list,
    "crm.item.add": item_add,
    "crm.item.update": item_update,
    "crm.item.delete": item_delete,
    "crm.category.list": category_list,
    "crm.status.list": status_list,
    "crm.enum.ownertype": enum_ownertype,
}
