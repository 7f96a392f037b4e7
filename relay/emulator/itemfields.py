"""Deals seen through ``crm.item.*`` (entityTypeId 2): camelCase names and JSON typing.

The same stored deal serves ``crm.deal.*`` (UPPER_CASE, strings) and ``crm.item.*`` (camelCase,
numbers as numbers, ``contactIds`` as a list) — ``api-reference/crm/universal/crm-item-get.md``,
``crm-item-add.md`` (deal example), ``api-reference/crm/universal/object-fields.md``.
Custom field names follow the "regular" / "simplified" conversion of
``api-reference/crm/universal/index.md`` ("Field Naming Conventions"); ``useOriginalUfNames=Y``
keeps ``UF_CRM_*`` names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relay.emulator import deal_contacts
from relay.emulator.state import PortalState
from relay.emulator.values import floatval, intval

#: camelCase name -> (UPPER_CASE deal field, output kind) — crm-item-add.md deal example
DEAL_FIELDS: dict[str, tuple[str, str]] = {
    "id": ("ID", "int"), "title": ("TITLE", "str"), "typeId": ("TYPE_ID", "str"),
    "categoryId": ("CATEGORY_ID", "int"), "stageId": ("STAGE_ID", "str"),
    "stageSemanticId": ("STAGE_SEMANTIC_ID", "str"), "isNew": ("IS_NEW", "str"),
    "isRecurring": ("IS_RECURRING", "str"), "isReturnCustomer": ("IS_RETURN_CUSTOMER", "str"),
    "isRepeatedApproach": ("IS_REPEATED_APPROACH", "str"), "closed": ("CLOSED", "str"),
    "probability": ("PROBABILITY", "int?"), "currencyId": ("CURRENCY_ID", "str"),
    "opportunity": ("OPPORTUNITY", "float"), "isManualOpportunity": ("IS_MANUAL_OPPORTUNITY", "str"),
    "taxValue": ("TAX_VALUE", "float"), "leadId": ("LEAD_ID", "int?"), "companyId": ("COMPANY_ID", "int0"),
    "contactId": ("CONTACT_ID", "int0"), "quoteId": ("QUOTE_ID", "int?"),
    "begindate": ("BEGINDATE", "str"), "closedate": ("CLOSEDATE", "str"),
    "assignedById": ("ASSIGNED_BY_ID", "int"), "createdBy": ("CREATED_BY_ID", "int"),
    "updatedBy": ("MODIFY_BY_ID", "int"), "createdTime": ("DATE_CREATE", "str"),
    "updatedTime": ("DATE_MODIFY", "str"), "opened": ("OPENED", "str"), "comments": ("COMMENTS", "str"),
    "additionalInfo": ("ADDITIONAL_INFO", "str"), "locationId": ("LOCATION_ID", "str"),
    "sourceId": ("SOURCE_ID", "str"), "sourceDescription": ("SOURCE_DESCRIPTION", "str"),
    "originatorId": ("ORIGINATOR_ID", "str"), "originId": ("ORIGIN_ID", "str"),
    "movedBy": ("MOVED_BY_ID", "int"), "movedTime": ("MOVED_TIME", "str"),
    "lastActivityBy": ("LAST_ACTIVITY_BY", "int"), "lastActivityTime": ("LAST_ACTIVITY_TIME", "str"),
    "utmSource": ("UTM_SOURCE", "str"), "utmMedium": ("UTM_MEDIUM", "str"),
    "utmCampaign": ("UTM_CAMPAIGN", "str"), "utmContent": ("UTM_CONTENT", "str"), "utmTerm": ("UTM_TERM", "str"),
}
#: fields an item write never sets (the portal computes them)
READ_ONLY = frozenset({"id", "createdBy", "updatedBy", "createdTime", "updatedTime", "movedBy", "movedTime",
                       "lastActivityBy", "lastActivityTime", "stageSemanticId", "isNew", "closed"})


def uf_camel(name: str) -> str:
    """``UF_CRM_3_1747309727`` -> ``ufCrm3_1747309727``, ``UF_CRM_1747309879`` -> ``ufCrm_1747309879``,
    ``UF_CRM_SOURCE_DEAL`` -> ``ufCrmSourceDeal`` — ``api-reference/crm/universal/index.md``."""
    tokens = name[len("UF_CRM_"):].split("_")
    number = tokens[0] if len(tokens) > 1 and tokens[0].isdigit() else None
    rest = tokens[1:] if number is not None else tokens
    regular = (bool(rest) and all(t.isalpha() for t in rest)) or (
        number is not None and bool(rest) and all(t.isdigit() for t in rest))
    if not regular:  # simplified: only the prefix changes
        return "ufCrm_" + name[len("UF_CRM_"):]
    out = "ufCrm" + (number or "")
    previous_digit = number is not None
    for token in rest:
        if token.isdigit():
            out += ("_" if previous_digit else "") + token
            previous_digit = True
        else:
            out += token.capitalize()
            previous_digit = False
    return out


def uf_names(state: PortalState, original: bool) -> dict[str, str]:
    """Item-side name -> ``UF_CRM_*`` name for every configured deal custom field."""
    return {(n if original else uf_camel(n)): n for n in state.config.uf_fields}


def _typed(kind: str, value: Any) -> Any:
    if kind == "int":
        return intval(value)
    if kind == "int0":
        return intval(value) if value not in (None, "") else 0
    if kind == "int?":
        return intval(value) if value not in (None, "") else None
    if kind == "float":
        return floatval(value)
    return value


def contact_ids(state: PortalState, record: Mapping[str, Any]) -> list[int]:
    """The deal's contacts (:mod:`relay.emulator.deal_contacts` bindings), else ``[CONTACT_ID]`` when set."""
    bound = [intval(b["CONTACT_ID"]) for b in deal_contacts.bindings(state, intval(record["ID"]))]
    if bound:
        return bound
    return [intval(record["CONTACT_ID"])] if record.get("CONTACT_ID") else []


def deal_item(state: PortalState, record: Mapping[str, Any], original: bool,
              uf_value: Any = None) -> dict[str, Any]:
    """The ``crm.item.get`` view of a stored deal; ``uf_value(name, value)`` renders custom fields."""
    item: dict[str, Any] = {name: _typed(kind, record.get(upper)) for name, (upper, kind) in DEAL_FIELDS.items()}
    for out_name, upper in uf_names(state, original).items():
        value = record.get(upper)
        item[out_name] = uf_value(upper, value) if uf_value is not None else value
    item["observers"] = []
    item["contactIds"] = contact_ids(state, record)
    item["entityTypeId"] = 2
    return item


def deal_fields_from_item(state: PortalState, fields: Mapping[str, Any], original: bool) -> dict[str, Any]:
    """Translate ``crm.item.add/update`` fields into ``crm.deal.*`` field names (unknown ones dropped)."""
    ufs = uf_names(state, original)
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name in DEAL_FIELDS and name not in READ_ONLY:
            out[DEAL_FIELDS[name][0]] = value
        elif name == "contactIds":
            out["CONTACT_IDS"] = value
        elif name in ufs:
            out[ufs[name]] = value
    return out
