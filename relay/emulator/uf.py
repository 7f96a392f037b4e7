"""Custom ``UF_CRM_*`` field values: conversion by user-field type and enumeration checks.

Types — ``api-reference/crm/deals/user-defined-fields/crm-deal-userfield-add.md``; enumeration
values are item ids, multiple fields are arrays — ``api-reference/crm/deals/crm-deal-fields.md``,
``api-reference/crm/_include/user-fields-for-examples-cut.md``.
"""

from __future__ import annotations

from typing import Any

from relay.emulator.core import validation
from relay.emulator.state import PortalState
from relay.emulator.values import floatval, intval, iso, parse_datetime, php_str

_YES = {"Y", "y", "1", "true", "TRUE", "True"}


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
    return _one(state, name, uf_type, value)
