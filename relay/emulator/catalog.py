"""The product catalog: ``crm.product.list/get`` (deprecated) and ``catalog.product.list``.

``crm.product.*`` is "DEPRECATED … use ``catalog.product.list``", yet it is the simplest way to find
a product by its external code and read its price in one call: a legacy list (``order``,
``filter`` with the usual prefixes, ``select``, ``start``) over ``ID``, ``CATALOG_ID``, ``PRICE``,
``CURRENCY_ID``, ``NAME``, ``CODE``, ``DESCRIPTION``, ``ACTIVE``, ``SECTION_ID``, ``SORT``, ``VAT_ID``,
``VAT_INCLUDED``, ``MEASURE``, ``XML_ID``, dates and authors — ``api-reference/crm/outdated/products/
crm-product-{list,get,fields}.md``.  ``catalog.product.list`` needs ``filter.iblockId`` and ``select``
with ``id`` and ``iblockId``, answers ``{"products": [...]}`` in camelCase with ``total`` and no
prices (those are ``catalog.price.*``); errors ``0`` "Required select fields: id, iblockId",
``0`` "Required filter fields: iblockId", ``0`` "Incorrect filter format", ``200040300000``
"Iblock Not Found" — ``api-reference/catalog/product/catalog-product-list.md``.  A product without an
external code gets its id as ``XML_ID`` (that page's example: ``"id": 1243`` … ``"xmlId": "1243"``);
``MEASURE``/``measure`` is a unit id (``catalog_measure.id``, ``api-reference/catalog/data-types.md``).

UNVERIFIED: legacy values as strings (``PRICE`` ``"1000.00"``); the catalog iblock id 23 (the
docs' example) standing for ``CATALOG_ID``; ``crm.product.get`` of an unknown id answering
``""``/``Not found``; ``@XML_ID`` accepted by ``crm.product.list`` (a plain ``XML_ID`` with an
array works too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from relay.emulator import itemlist
from relay.emulator.core import EmuError, Reply, param
from relay.emulator.reclist import Catalogue, list_records
from relay.emulator.values import floatval, intval, iso, php_str, strict_id

if TYPE_CHECKING:
    from relay.emulator.state import PortalState

Handler = Callable[["PortalState", Mapping[str, Any]], Reply]
IBLOCK_ID = 23
DEFAULT_MEASURE = 5  # "pcs" (relay.emulator.units)
#: ``crm.product.fields`` in ``crm.product.list`` select order (crm-product-list.md PHP example)
FIELDS: tuple[str, ...] = (
    "ID", "CATALOG_ID", "PRICE", "CURRENCY_ID", "NAME", "CODE", "DESCRIPTION", "DESCRIPTION_TYPE", "ACTIVE",
    "SECTION_ID", "SORT", "VAT_ID", "VAT_INCLUDED", "MEASURE", "XML_ID", "PREVIEW_PICTURE", "DETAIL_PICTURE",
    "DATE_CREATE", "TIMESTAMP_X", "MODIFIED_BY", "CREATED_BY",
)
_TEXT = frozenset({"NAME", "CODE", "DESCRIPTION", "XML_ID"})
#: ``catalog_product`` name -> legacy name (or None: a constant of every emulated product)
_CAMEL: dict[str, str | None] = {
    "id": "ID", "iblockId": "CATALOG_ID", "name": "NAME", "active": "ACTIVE", "available": None, "code": "CODE",
    "xmlId": "XML_ID", "bundle": None, "createdBy": "CREATED_BY", "modifiedBy": "MODIFIED_BY",
    "dateCreate": "DATE_CREATE", "timestampX": "TIMESTAMP_X", "iblockSectionId": "SECTION_ID",
    "measure": "MEASURE", "detailText": "DESCRIPTION", "detailTextType": "DESCRIPTION_TYPE", "sort": "SORT",
    "type": None, "vatId": "VAT_ID", "vatIncluded": "VAT_INCLUDED",
}
_CONSTANT = {"available": "Y", "bundle": "N", "type": 1}
_INT = {"id", "iblockId", "createdBy", "modifiedBy", "iblockSectionId", "measure", "sort", "vatId"}


def product_record(product_id: int, name: str, *, price: float = 0.0, currency: str = "RUB",
                   xml_id: str | None = None, measure: int = DEFAULT_MEASURE, user: int = 1,
                   when: datetime | None = None) -> dict[str, Any]:
    """A catalog product as ``crm.product.get`` returns it (legacy strings)."""
    stamp = iso(when) if when is not None else None
    return {
        "ID": str(product_id), "CATALOG_ID": str(IBLOCK_ID), "PRICE": f"{floatval(price):.2f}",
        "CURRENCY_ID": currency, "NAME": name, "CODE": None, "DESCRIPTION": None, "DESCRIPTION_TYPE": "text",
        "ACTIVE": "Y", "SECTION_ID": None, "SORT": "500", "VAT_ID": None, "VAT_INCLUDED": "N",
        "MEASURE": str(measure), "XML_ID": xml_id or str(product_id), "PREVIEW_PICTURE": None,
        "DETAIL_PICTURE": None, "DATE_CREATE": stamp, "TIMESTAMP_X": stamp, "MODIFIED_BY": str(user),
        "CREATED_BY": str(user),
    }


def add_product(state: PortalState, name: str, price: float = 0.0, xml_id: str | None = None, *,
                currency: str | None = None, measure: int = DEFAULT_MEASURE) -> int:
    """Put a product in the catalog as a user would; returns its id."""
    code = (currency or state.config.currency).upper()
    if code not in state.config.currencies:
        raise ValueError(f"currency {code!r} is not one of the portal's currencies")
    if not name.strip():
        raise ValueError("a product needs a name")
    product_id = state.next_id("product")
    state.products[product_id] = product_record(product_id, name, price=price, currency=code, xml_id=xml_id,
                                                measure=measure, user=state.config.user_id, when=state.now())
    return product_id


def product_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.product.list`` — ``api-reference/crm/outdated/products/crm-product-list.md``."""
    cat = Catalogue(standard=FIELDS, default_select=("*",), text=_TEXT)
    return list_records(cat, state.products.values(), params, state.tz)


def product_get(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.product.get`` — ``api-reference/crm/outdated/products/crm-product-get.md``."""
    product_id = strict_id(param(params, "id"))
    if product_id is None:
        raise EmuError(400, "", "ID is not defined or invalid.")
    record = state.products.get(product_id)
    if record is None:
        raise EmuError(400, "", "Not found")
    return Reply(dict(record))


def _camel(record: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, legacy in _CAMEL.items():
        value = _CONSTANT[name] if legacy is None else record.get(legacy)
        out[name] = intval(value) if name in _INT and value not in (None, "") else value
    return out


def _zero(text: str) -> EmuError:
    return EmuError(400, "0", text)


def catalog_product_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``catalog.product.list`` — ``api-reference/catalog/product/catalog-product-list.md``."""
    select = param(params, "select")
    names = [php_str(n) for n in select] if isinstance(select, list) else []
    missing = [n for n in ("id", "iblockId") if n not in names]
    if missing:
        raise _zero(f"Required select fields: {', '.join(missing)}")
    flt = param(params, "filter")
    if not isinstance(flt, Mapping):
        raise _zero("Incorrect filter format")
    if "iblockId" not in flt:
        raise _zero("Required filter fields: iblockId")
    if intval(flt["iblockId"]) != IBLOCK_ID:
        raise EmuError(400, "200040300000", "Iblock Not Found")
    rest = {k: v for k, v in flt.items() if k != "iblockId"}
    matches = itemlist.build_filter(rest, tuple(_CAMEL), state.tz, text=("name", "code", "xmlId", "detailText"))
    found = [p for p in (_camel(r) for r in state.products.values()) if matches(p)]
    itemlist.sort_records(found, itemlist.order_keys(param(params, "order"), tuple(_CAMEL)), state.tz)
    found = [{k: v for k, v in p.items() if k in names} for p in found]
    return itemlist.page(found, param(params, "start"), "products")


HANDLERS: dict[str, Handler] = {
    "crm.product.list": product_list,
    "crm.product.get": product_get,
    "catalog.product.list": catalog_product_list,
}
