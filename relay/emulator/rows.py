"""Deal product rows: ``crm.deal.productrows.get`` / ``.set`` with replace-all semantics.

Row shape and numeric JSON typing — ``api-reference/crm/deals/crm-deal-productrows-get.md``;
writable fields, defaults (``PRODUCT_ID`` 0, ``QUANTITY`` 1, ``DISCOUNT_TYPE_ID`` 2,
``TAX_INCLUDED`` N) and "rows not passed are deleted" — ``crm-deal-productrows-set.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relay.emulator.core import EmuError, validation
from relay.emulator.state import PortalState
from relay.emulator.values import floatval, intval, is_numeric, iso, php_str

_YES = {"Y", "y", "1", "true", "True"}


def _money(value: float) -> float:
    return round(value, 2)


def _opt_float(raw: Mapping[str, Any], key: str) -> float | None:
    value = raw.get(key)
    return floatval(value) if is_numeric(value) else None


def normalize_row(state: PortalState, raw: Any, owner_id: int, position: int) -> dict[str, Any]:
    """One incoming row (numbers possibly as strings) -> the stored row with real numbers."""
    if not isinstance(raw, Mapping):
        raise validation("Parameter 'rows' must be array of arrays.")
    product_id = intval(raw.get("PRODUCT_ID", 0))
    product = state.products.get(product_id)  # relay/emulator/catalog.py
    if product_id and product is None:
        raise EmuError(400, "ERROR_CORE", "Product is not found")
    catalog_name = php_str(product["NAME"]) if product is not None else ""
    name = php_str(raw.get("PRODUCT_NAME")) or catalog_name
    price = floatval(raw.get("PRICE", 0))
    quantity = floatval(raw["QUANTITY"]) if is_numeric(raw.get("QUANTITY")) else 1.0
    tax_rate = _opt_float(raw, "TAX_RATE")
    tax_included = "Y" if php_str(raw.get("TAX_INCLUDED")) in _YES else "N"
    discount_type = intval(raw.get("DISCOUNT_TYPE_ID", 2)) or 2
    factor = 1 + (tax_rate or 0.0) / 100
    exclusive = _opt_float(raw, "PRICE_EXCLUSIVE")
    exclusive = price / factor if exclusive is None else exclusive
    discount_sum = _opt_float(raw, "DISCOUNT_SUM")
    discount_rate = _opt_float(raw, "DISCOUNT_RATE")
    netto = _opt_float(raw, "PRICE_NETTO")
    if netto is None:
        if discount_type == 1 or discount_rate is None:
            netto = exclusive + (discount_sum or 0.0)
        else:
            netto = exclusive / (1 - discount_rate / 100) if discount_rate < 100 else exclusive
    if discount_sum is None:
        discount_sum = netto - exclusive
    if discount_rate is None:
        discount_rate = discount_sum / netto * 100 if netto else 0.0
    brutto = _opt_float(raw, "PRICE_BRUTTO")
    brutto = netto * factor if brutto is None else brutto
    sort = intval(raw["SORT"]) if is_numeric(raw.get("SORT")) else 10 * (position + 1)
    return {
        "ID": state.next_id("row"),
        "OWNER_ID": owner_id,
        "OWNER_TYPE": "D",
        "PRODUCT_ID": product_id,
        "PRODUCT_NAME": name,
        "ORIGINAL_PRODUCT_NAME": catalog_name or name,
        "PRODUCT_DESCRIPTION": php_str(raw.get("PRODUCT_DESCRIPTION")) or None,
        "PRICE": _money(price),
        "PRICE_EXCLUSIVE": _money(exclusive),
        "PRICE_NETTO": _money(netto),
        "PRICE_BRUTTO": _money(brutto),
        "PRICE_ACCOUNT": _money(price),
        "QUANTITY": quantity,
        "DISCOUNT_TYPE_ID": discount_type,
        "DISCOUNT_RATE": _money(discount_rate),
        "DISCOUNT_SUM": _money(discount_sum),
        "TAX_RATE": tax_rate,
        "TAX_INCLUDED": tax_included,
        "CUSTOMIZED": "Y",
        "MEASURE_CODE": intval(raw["MEASURE_CODE"]) if is_numeric(raw.get("MEASURE_CODE")) else 796,
        "MEASURE_NAME": php_str(raw.get("MEASURE_NAME")) or "pcs",
        "SORT": sort,
        "XML_ID": php_str(raw.get("XML_ID")) or None,
        "TYPE": 1,
        "STORE_ID": None,
    }


def _row_list(raw: Any) -> list[Any]:
    if raw in (None, "", []):
        return []  # absent or empty: clears the rows (replace-all)
    if isinstance(raw, list):
        return raw
    if isinstance(raw, Mapping):  # form bodies with gaps (rows[1][..]) decode to an object
        if all(isinstance(v, Mapping) for v in raw.values()):
            return list(raw.values())
        return [raw]
    raise validation("Parameter 'rows' must be array of arrays.")


def automatic_amount(state: PortalState, deal: Mapping[str, Any]) -> str | None:
    """The amount a save gives the deal: the sum of its rows unless ``IS_MANUAL_OPPORTUNITY`` is
    ``Y`` or it has no rows (then None: the amount stays as it is).

    "If a deal has line items and isManualOpportunity = N, after saving, Bitrix24 will recalculate
    the amount based on the line items" —
    ``tutorials/crm/how-to-edit-crm-objects/how-to-generate-edit-form-for-deal.md``; product rows are
    what "the CRM calculates the total amount" from — ``api-reference/crm/universal/product-rows/index.md``.
    """
    rows = state.rows.get(intval(deal["ID"]), [])
    if not rows or deal.get("IS_MANUAL_OPPORTUNITY") == "Y":
        return None
    return f"{sum(r['PRICE'] * r['QUANTITY'] for r in rows):.2f}"


def set_rows(state: PortalState, deal_id: int, raw: Any) -> None:
    """Replace all rows of a deal; with rows, ``OPPORTUNITY`` becomes their sum unless manual."""
    deal = state.deal(deal_id)
    state.rows[deal_id] = [normalize_row(state, r, deal_id, i) for i, r in enumerate(_row_list(raw))]
    total = automatic_amount(state, deal)
    if total is not None and total != deal["OPPORTUNITY"]:
        deal["OPPORTUNITY"] = total
        deal["DATE_MODIFY"] = iso(state.now())


def get_rows(state: PortalState, deal_id: int) -> list[dict[str, Any]]:
    """Copies of a deal's rows in ``SORT`` order; the legacy ``Not found`` when no deal."""
    state.deal(deal_id)
    return [dict(r) for r in sorted(state.rows.get(deal_id, []), key=lambda r: (r["SORT"], r["ID"]))]
