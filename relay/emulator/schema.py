"""The deal field catalogue: standard fields, custom ``UF_CRM_*`` fields, ``crm.deal.fields``.

Field list and types — ``api-reference/crm/deals/crm-deal-get.md``, ``crm-deal-fields.md``;
description shape — ``api-reference/crm/data-types.md#crm_rest_field_description``.  A custom field's
``title`` is its code and its label sits in ``listLabel``/``formLabel``/``filterLabel``
(``api-reference/crm/companies/crm-company-fields.md`` example); ``isRequired`` follows the portal's
``required_fields`` (a custom field's ``MANDATORY`` — ``user-defined-fields/crm-deal-userfield-add.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay.emulator.config import PortalConfig


@dataclass(frozen=True)
class FieldSpec:
    """One standard deal field: REST ``type``, storage ``kind`` and flags."""

    type: str
    kind: str
    title: str
    read_only: bool = False
    immutable: bool = False
    status_type: str | None = None
    multiple: bool = False
    hidden: bool = False  # accepted on write, never returned by crm.deal.get/list


def _f(type_: str, kind: str, title: str, **flags: Any) -> FieldSpec:
    return FieldSpec(type_, kind, title, **flags)


#: standard fields in the order ``crm.deal.get`` returns them — ``api-reference/crm/deals/crm-deal-get.md``
STANDARD: dict[str, FieldSpec] = {
    "ID": _f("integer", "int", "ID", read_only=True),
    "TITLE": _f("string", "str", "Name"),
    "TYPE_ID": _f("crm_status", "str", "Type", status_type="DEAL_TYPE"),
    "STAGE_ID": _f("crm_status", "stage", "Stage", status_type="DEAL_STAGE"),
    "PROBABILITY": _f("integer", "int", "Probability"),
    "CURRENCY_ID": _f("crm_currency", "currency", "Currency"),
    "OPPORTUNITY": _f("double", "money", "Amount"),
    "IS_MANUAL_OPPORTUNITY": _f("char", "yn", "IS_MANUAL_OPPORTUNITY"),  # sic: crm-deal-fields.md
    "TAX_VALUE": _f("double", "money", "Tax rate"),
    "LEAD_ID": _f("crm_lead", "link", "Lead"),
    "COMPANY_ID": _f("crm_company", "link", "Company"),
    "CONTACT_ID": _f("crm_contact", "link", "Contact"),
    "QUOTE_ID": _f("crm_quote", "link", "Quote"),
    "BEGINDATE": _f("date", "date", "Start date"),
    "CLOSEDATE": _f("date", "date", "End date"),
    "ASSIGNED_BY_ID": _f("user", "user", "Responsible person"),
    "CREATED_BY_ID": _f("user", "link", "Created by", read_only=True),
    "MODIFY_BY_ID": _f("user", "link", "Modified by", read_only=True),
    "DATE_CREATE": _f("datetime", "datetime", "Created on", read_only=True),
    "DATE_MODIFY": _f("datetime", "datetime", "Modified on", read_only=True),
    "OPENED": _f("char", "yn", "Available to everyone"),
    "CLOSED": _f("char", "yn", "Closed"),
    "COMMENTS": _f("string", "str", "Comment"),
    "ADDITIONAL_INFO": _f("string", "str", "Additional information"),
    "LOCATION_ID": _f("location", "str", "Location"),
    "CATEGORY_ID": _f("crm_category", "category", "Pipeline", immutable=True),
    "STAGE_SEMANTIC_ID": _f("string", "str", "Stage group", read_only=True),
    "IS_NEW": _f("char", "yn", "New deal", read_only=True),
    "IS_RECURRING": _f("char", "yn", "Recurring deal"),
    "IS_RETURN_CUSTOMER": _f("char", "yn", "Repeat deal"),
    "IS_REPEATED_APPROACH": _f("char", "yn", "Repeat inquiry"),
    "SOURCE_ID": _f("crm_status", "str", "Source", status_type="SOURCE"),
    "SOURCE_DESCRIPTION": _f("string", "str", "Source information"),
    "ORIGINATOR_ID": _f("string", "str", "External source"),
    "ORIGIN_ID": _f("string", "str", "Item ID in data source"),
    "MOVED_BY_ID": _f("user", "link", "Stage changed by", read_only=True),
    "MOVED_TIME": _f("datetime", "datetime", "Stage changed on", read_only=True),
    "LAST_ACTIVITY_TIME": _f("datetime", "datetime", "Last activity", read_only=True),
    "LAST_ACTIVITY_BY": _f("user", "link", "Last activity by", read_only=True),
    "UTM_SOURCE": _f("string", "str", "Ad system"),
    "UTM_MEDIUM": _f("string", "str", "Traffic type"),
    "UTM_CAMPAIGN": _f("string", "str", "Ad campaign UTM"),
    "UTM_CONTENT": _f("string", "str", "Campaign contents"),
    "UTM_TERM": _f("string", "str", "Campaign search term"),
    # CONTACT_IDS is writable but not returned by crm.deal.get/list — crm-deal-fields.md note
    "CONTACT_IDS": _f("crm_contact", "ids", "Contacts", multiple=True, hidden=True),
}

#: read-only fields a test may still set when seeding a deal directly (a deal "made earlier")
SEEDABLE: frozenset[str] = frozenset({
    "DATE_CREATE", "DATE_MODIFY", "CREATED_BY_ID", "MODIFY_BY_ID", "MOVED_BY_ID", "MOVED_TIME",
    "LAST_ACTIVITY_TIME", "LAST_ACTIVITY_BY",
})

#: the fields the ``*`` select mask stands for — ``api-reference/crm/deals/crm-deal-list.md``
VISIBLE: tuple[str, ...] = tuple(name for name, spec in STANDARD.items() if not spec.hidden)


def is_known(config: PortalConfig, name: str) -> bool:
    """True for a standard field or a configured custom field."""
    return name in STANDARD or name in config.uf_fields


def uf_is_multiple(config: PortalConfig, name: str) -> bool:
    """True when a custom field holds an array of values."""
    return name in config.uf_multiple


def label(config: PortalConfig, name: str) -> str:
    """What a user sees as the field's name: the standard title, a custom label, else the code."""
    spec = STANDARD.get(name)
    return spec.title if spec is not None else config.field_labels.get(name) or name


def _uf_description(config: PortalConfig, name: str, uf_type: str) -> dict[str, Any]:
    text = label(config, name)
    desc: dict[str, Any] = {
        "type": uf_type,
        "isRequired": name in config.required_fields,
        "isReadOnly": False,
        "isImmutable": False,
        "isMultiple": uf_is_multiple(config, name),
        "isDynamic": True,
        "title": name,  # custom fields: title is the code, the label sits in *Label
        "listLabel": text,
        "formLabel": text,
        "filterLabel": text,
        "upperName": name,
    }
    if uf_type == "enumeration":
        desc["items"] = [{"ID": k, "VALUE": v} for k, v in config.enum_map(name).items()]
    return desc


def describe_fields(config: PortalConfig) -> dict[str, dict[str, Any]]:
    """The ``crm.deal.fields`` result — ``api-reference/crm/deals/crm-deal-fields.md``."""
    out: dict[str, dict[str, Any]] = {}
    for name, spec in STANDARD.items():
        desc: dict[str, Any] = {
            "type": spec.type,
            "isRequired": name in config.required_fields,
            "isReadOnly": spec.read_only,
            "isImmutable": spec.immutable,
            "isMultiple": spec.multiple,
            "isDynamic": False,
            "title": spec.title,
        }
        if spec.status_type:
            desc["statusType"] = spec.status_type
        out[name] = desc
    for name, uf_type in config.uf_fields.items():
        out[name] = _uf_description(config, name, uf_type)
    return out
