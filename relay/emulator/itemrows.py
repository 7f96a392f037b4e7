"""``crm.item.productrow.list`` / ``crm.item.productrow.set`` for deals (``D``) and smart invoices (``SI``).

Deal rows are the very rows of ``crm.deal.productrows.*`` (:mod:`relay.emulator.rows`), shown in
camelCase.  ``set`` replaces all rows of the owner and answers ``{"productRows": [...]}``; errors
``OWNER_NOT_FOUND``, ``ENTITY_TYPE_NOT_SUPPORTED``, ``100`` (required parameter) —
``api-reference/crm/universal/product-rows/crm-item-productrow-set.md``.  ``list`` needs
``filter`` with ``=ownerType`` (short code, ``crm.enum.ownertype`` ``SYMBOL_CODE_SHORT``) and
``=ownerId`` ("``=`` works with arrays as well"), pages of 50, no ``select`` —
``crm-item-productrow-list.md``.  Without those keys the emulator answers ``REQUIRED_ARG_MISSING``
(the wording of a later revision of that page; the pinned revision only lists ``100``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from relay.emulator import itemlist
from relay.emulator import rows as deal_rows
from relay.emulator.core import EmuError, Reply, param
from relay.emulator.items import Handler
from relay.emulator.state import PortalState
from relay.emulator.values import intval, iso, php_str, strict_id

#: the fields of ``crm_item_product_row`` — ``crm-item-productrow-list.md`` (response example)
ROW_FIELDS = ("id", "ownerId", "ownerType", "productId", "productName", "price", "priceAccount",
              "priceExclusive", "priceNetto", "priceBrutto", "quantity", "discountTypeId", "discountRate",
              "discountSum", "taxRate", "taxIncluded", "customized", "measureCode", "measureName", "sort",
              "xmlId", "type", "storeId")
_UPPER = {name: re.sub(r"([A-Z])", r"_\1", name).upper() for name in ROW_FIELDS}
OWNER_TYPES = ("D", "SI")


def camel_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored (``crm.deal.productrows.get``) row in ``crm.item.productrow`` shape."""
    return {name: row.get(upper) for name, upper in _UPPER.items()}


def _upper_row(raw: Any) -> Any:
    if not isinstance(raw, Mapping):
        return raw
    return {re.sub(r"([A-Z])", r"_\1", str(k)).upper(): v for k, v in raw.items()}


def _owner_rows(state: PortalState, owner_type: str, owner_id: int) -> list[dict[str, Any]] | None:
    if owner_type == "D":
        return state.rows.get(owner_id) if owner_id in state.deals else None
    if owner_type == "SI":
        return state.invoice_rows.get(owner_id, []) if owner_id in state.invoices else None
    return None


def owner_rows(state: PortalState, owner_type: str, owner_id: int) -> list[dict[str, Any]]:
    """Copies of one owner's rows in ``crm.item.productrow`` shape, by ``sort`` (empty when unknown)."""
    rows = [camel_row(r) for r in _owner_rows(state, owner_type, owner_id) or []]
    return sorted(rows, key=lambda r: (r["sort"], r["id"]))


def productrow_set(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.item.productrow.set``: replace all rows of one owner."""
    for name in ("ownerType", "ownerId"):
        if php_str(params.get(name)) == "":
            raise EmuError(400, "100", f"Could not find value for parameter {{{name}}}")
    owner_type = php_str(params["ownerType"]).upper()
    owner_id = strict_id(params["ownerId"]) or 0
    if owner_type not in OWNER_TYPES:
        raise EmuError(400, "ENTITY_TYPE_NOT_SUPPORTED", "Working with this type of objects is not supported")
    if _owner_rows(state, owner_type, owner_id) is None:
        raise EmuError(400, "OWNER_NOT_FOUND", "Owner was not found")
    raw = params.get("productRows")
    if raw is None:
        raise EmuError(400, "100", "Could not find value for parameter {productRows}")
    items = list(raw.values()) if isinstance(raw, Mapping) else raw if isinstance(raw, list) else []
    upper = [_upper_row(r) for r in items]
    if owner_type == "D":
        deal_rows.set_rows(state, owner_id, upper)
        stored = deal_rows.get_rows(state, owner_id)
    else:
        stored = [{**deal_rows.normalize_row(state, r, owner_id, i), "OWNER_TYPE": "SI"} for i, r in enumerate(upper)]
        state.invoice_rows[owner_id] = stored
        invoice = state.invoices[owner_id]
        if stored and invoice["isManualOpportunity"] != "Y":
            invoice["opportunity"] = round(sum(r["PRICE"] * r["QUANTITY"] for r in stored), 2)
            invoice["updatedTime"] = iso(state.now())
    return Reply({"productRows": [camel_row(r) for r in stored]})


def _wanted(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        return list(value.values())
    return [value]


def productrow_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.item.productrow.list``: rows of one or many owners, 50 per page."""
    flt = param(params, "filter")
    if not isinstance(flt, Mapping):
        raise EmuError(400, "100", "Could not find value for parameter {filter}")
    missing = [k for k in ("=ownerType", "=ownerId") if k not in flt]
    if missing:
        raise EmuError(400, "REQUIRED_ARG_MISSING", f"Required filter keys are missing: {', '.join(missing)}")
    types = [php_str(t).upper() for t in _wanted(flt["=ownerType"])]
    owners = sorted({intval(i) for i in _wanted(flt["=ownerId"])})
    found = [camel_row(r) for owner_type in dict.fromkeys(types) for owner_id in owners
             for r in (_owner_rows(state, owner_type, owner_id) or [])]
    rest = {k: v for k, v in flt.items() if k not in ("=ownerType", "=ownerId")}
    matches = itemlist.build_filter(rest, ROW_FIELDS, state.tz)
    found = [r for r in found if matches(r)]
    keys = itemlist.order_keys(param(params, "order"), ROW_FIELDS) or [("sort", False)]
    itemlist.sort_records(found, keys, state.tz)
    return itemlist.page(found, param(params, "start"), "productRows")


HANDLERS: dict[str, Handler] = {
    "crm.item.productrow.list": productrow_list,
    "crm.item.productrow.set": productrow_set,
}
