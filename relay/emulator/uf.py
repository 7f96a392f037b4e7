"""Custom ``UF_CRM_*`` field values: conversion by user-field type and enumeration checks.

Types — ``api-reference/crm/deals/user-defined-fields/crm-deal-userfield-add.md``; enumeration
values are item ids, multiple fields are arrays — ``api-reference/crm/deals/crm-deal-fields.md``,
``api-reference/crm/_include/user-fields-for-examples-cut.md``.

Empty values: a multiple field reads back as ``[]``, a date field as ``""`` (like standard dates),
any other single field as ``null`` (``api-reference/crm/leads/crm-lead-list.md`` shows ``null``
custom fields; what a real portal returns for an empty *multiple* field is UNVERIFIED).  Clearing
in a form-encoded call (``batch`` commands cannot carry ``[]``): a multiple field takes ``X=``
(``""``) as well as ``X[]=`` / ``X[0]=`` (``['']``), a single field ``X=``; a JSON ``null`` or
``[]`` clears too.  Which of these a real portal honours for a multiple list field is not
documented (``tutorials/crm/how-to-edit-crm-objects/how-to-generate-edit-form-for-deal.md`` only
says an empty array does *not* clear one through ``crm.item.update``), so every form is accepted.
"""

from __future__ import annotations

from typing import Any

from relay.emulator.core import validation
from relay.emulator.state import PortalState
from relay.emulator.values import floatval, intval, iso, parse_datetime, php_str

_YES = {"Y", "y", "1", "true", "TRUE", "True"}


def is_blank(value: Any) -> bool:
    """``null``, ``""``, ``[]`` or a list of only those: what a client sends to clear a field."""
    if isinstance(value, list):
        return all(is_blank(v) for v in value)
    return value is None or value == ""


def empty_uf(state: PortalState, name: str) -> Any:
    """What ``crm.deal.get`` returns for an empty custom field (module docstring)."""
    if name in state.config.uf_multiple:
        return []
    return "" if state.config.uf_fields[name] in ("date", "datetime") else None


def _one(state: PortalState, name: str, uf_type: str, value: Any) -> Any:
    """Convert a single (non-array) value of a custom field."""
    if value is None or value == "":
        return None
    if uf_type == "enumeration":
        item = php_str(value).strip()
        allowed = state.config.enum_map(name)
        if allowed and item not in allowed:
            raise validation(f"Value '{item}' is not an item of the list field '{name}'")
        return item
    if uf_type in ("integer", "employee"):
        return str(intval(value))
    if uf_type == "double":
        return php_str(floatval(value))
    if uf_type == "boolean":
        return "1" if value is True or php_str(value) in _YES else "0"
    if uf_type in ("date", "datetime"):
        moment = parse_datetime(value, state.tz)
        if moment is None:
            raise validation(f"Field '{name}' has an invalid date value '{php_str(value)}'")
        if uf_type == "date":
            moment = moment.replace(hour=0, minute=0, second=0)
        return iso(moment.replace(microsecond=0))
    if isinstance(value, (dict, list)):  # file payloads and other structures: kept as sent
        return value
    return php_str(value)


def convert_uf(state: PortalState, name: str, value: Any) -> Any:
    """Convert a custom field's incoming value to its stored form (a list when multiple)."""
    uf_type = state.config.uf_fields[name]
    if name in state.config.uf_multiple:
        items = value if isinstance(value, list) else [] if value in (None, "") else [value]
        converted = (_one(state, name, uf_type, v) for v in items)
        return [v for v in converted if v is not None]
    if isinstance(value, list) and uf_type != "file":
        value = value[0] if value else None
    one = _one(state, name, uf_type, value)
    return empty_uf(state, name) if one is None else one
