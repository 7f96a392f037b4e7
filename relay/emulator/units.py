"""Reference lists a document needs: currencies (``crm.currency.*``) and units of measure.

Currencies are the portal's ``currencies`` (:class:`relay.emulator.config.PortalConfig`; base =
``currency``) in the ``crm_currency`` shape: ``CURRENCY``, ``AMOUNT_CNT``, ``AMOUNT`` (4 decimals,
``1`` for the base), ``SORT``, ``BASE`` ``Y``/``N``, ``FULL_NAME``, ``LID``, ``FORMAT_STRING``,
``DEC_POINT``, ``THOUSANDS_SEP``, ``DECIMALS``, ``DATE_UPDATE``, all strings; ``crm.currency.list``
takes only ``order`` and answers ``total`` 0 ("currently always 0"); ``crm.currency.get`` adds
``LANG`` and answers an unknown code with ``""``/``Not found`` —
``api-reference/crm/currency/crm-currency-{list,get}.md``, ``api-reference/crm/data-types.md#crm_currency``.

Units: ``crm.measure.list`` (deprecated, "use ``catalog.measure.*``") is a legacy list of
``ID``, ``CODE``, ``MEASURE_TITLE``, ``SYMBOL_RUS``, ``SYMBOL_INTL``, ``SYMBOL_LETTER_INTL``,
``IS_DEFAULT`` — ``api-reference/crm/outdated/measure/crm-measure-{list,fields}.md``;
``catalog.measure.list`` answers ``{"measures": [...]}`` in camelCase with integer ``id``/``code``,
``select``/``filter``/``order``/``start`` — ``api-reference/catalog/measure/catalog-measure-list.md``.
Ids 1–4 (m 6, l 112, g 163, kg 166) follow that page's example; 796 "pcs" and 166 "kg" are the
codes of ``api-reference/crm/deals/crm-deal-productrows-set.md``.

UNVERIFIED: exchange rates (illustrative), names and format strings; legacy ``crm.measure.list``
values as strings; id 5 = ``796`` and it being the default unit; Russian titles/symbols.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from relay.emulator import itemlist
from relay.emulator.core import EmuError, Reply, param
from relay.emulator.reclist import Catalogue, list_records
from relay.emulator.state import PortalState
from relay.emulator.values import iso, php_str

Handler = Callable[[PortalState, Mapping[str, Any]], Reply]

#: code -> (full name, format string, hryvnias per unit: only to make cross rates look plausible)
_CURRENCY_INFO: dict[str, tuple[str, str, float]] = {
    "UAH": ("Ukrainian Hryvnia", "# ₴", 1.0), "USD": ("US Dollar", "$#", 41.5),
    "EUR": ("Euro", "€#", 45.0), "RUB": ("Russian Ruble", "# ₽", 0.45),
    "KZT": ("Tenge", "# ₸", 0.08), "BYN": ("Belarusian Ruble", "# Br", 12.7),
}
#: (id, code, title, symbol, international symbol, letter code, default)
_MEASURES: tuple[tuple[int, int, str, str, str, str, str], ...] = (
    (1, 6, "Метр", "м", "m", "MTR", "N"), (2, 112, "Литр", "л", "l", "LTR", "N"),
    (3, 163, "Грамм", "г", "g", "GRM", "N"), (4, 166, "Килограмм", "кг", "kg", "KGM", "N"),
    (5, 796, "Штука", "шт", "pcs", "PCE", "Y"),
)
DEFAULT_MEASURE = 5
_LEGACY_MEASURE = ("ID", "CODE", "MEASURE_TITLE", "SYMBOL_RUS", "SYMBOL_INTL", "SYMBOL_LETTER_INTL", "IS_DEFAULT")
_CAMEL_MEASURE = ("id", "code", "measureTitle", "symbol", "symbolIntl", "symbolLetterIntl", "isDefault")


def _updated(state: PortalState) -> str:
    return iso(datetime(2024, 1, 1, tzinfo=state.tz))


def _currency(state: PortalState, code: str, sort: int) -> dict[str, Any]:
    name, fmt, uah = _CURRENCY_INFO.get(code, (code, f"# {code}", 1.0))
    base = state.config.currency
    rate = 1.0 if code == base else uah / _CURRENCY_INFO.get(base, (base, "", 1.0))[2]
    return {"CURRENCY": code, "AMOUNT_CNT": "1", "AMOUNT": f"{rate:.4f}", "SORT": str(sort),
            "BASE": "Y" if code == base else "N", "FULL_NAME": name, "LID": "en", "FORMAT_STRING": fmt,
            "DEC_POINT": ".", "THOUSANDS_SEP": "&nbsp;", "DECIMALS": "2", "DATE_UPDATE": _updated(state)}


def currencies(state: PortalState) -> list[dict[str, Any]]:
    """Every currency of the portal (base first), ``crm_currency`` shape."""
    codes = sorted(state.config.currencies, key=lambda c: (c != state.config.currency, c))
    return [_currency(state, code, (i + 1) * 100) for i, code in enumerate(codes)]


def currency_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.currency.list``: ``order`` by any field (names case-insensitive), ``total`` 0 —
    ``api-reference/crm/currency/crm-currency-list.md``."""
    found = currencies(state)
    order = param(params, "order")
    if isinstance(order, Mapping):
        for name, direction in reversed(list(order.items())):
            found.sort(key=_sorter(str(name).upper()), reverse=php_str(direction).upper() == "DESC")
    return Reply(found, total=0)


def _sorter(key: str) -> Callable[[Mapping[str, Any]], tuple[float, str]]:
    def column(currency: Mapping[str, Any]) -> tuple[float, str]:
        value = php_str(currency.get(key))
        return (float(value), "") if key in ("SORT", "AMOUNT", "AMOUNT_CNT") else (0.0, value)
    return column


def currency_get(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.currency.get`` by ISO code, with ``LANG`` — ``api-reference/crm/currency/crm-currency-get.md``."""
    code = php_str(param(params, "id")).strip().upper()
    found = next((c for c in currencies(state) if c["CURRENCY"] == code), None)
    if found is None:
        raise EmuError(400, "", "Not found")
    lang = {k: found[k] for k in ("FORMAT_STRING", "FULL_NAME", "DEC_POINT", "THOUSANDS_SEP", "DECIMALS")}
    return Reply({**found, "LANG": {"en": {**lang, "THOUSANDS_VARIANT": "C", "HIDE_ZERO": "Y"}}})


def measures() -> list[dict[str, Any]]:
    """The units of measure in ``catalog_measure`` shape (integer ``id``/``code``)."""
    return [dict(zip(_CAMEL_MEASURE, m, strict=True)) for m in _MEASURES]


def measure_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.measure.list`` (legacy list, strings) — ``api-reference/crm/outdated/measure/crm-measure-list.md``."""
    rows = [{k: php_str(v) for k, v in zip(_LEGACY_MEASURE, m, strict=True)} for m in _MEASURES]
    cat = Catalogue(standard=_LEGACY_MEASURE, default_select=("*",),
                    text=frozenset({"MEASURE_TITLE", "SYMBOL_RUS", "SYMBOL_INTL", "SYMBOL_LETTER_INTL"}))
    return list_records(cat, rows, params, state.tz)


def catalog_measure_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``catalog.measure.list`` -> ``{"measures": [...]}`` —
    ``api-reference/catalog/measure/catalog-measure-list.md``."""
    found = measures()
    matches = itemlist.build_filter(param(params, "filter"), _CAMEL_MEASURE, state.tz,
                                    text=("measureTitle", "symbol", "symbolIntl", "symbolLetterIntl"))
    found = [m for m in found if matches(m)]
    itemlist.sort_records(found, itemlist.order_keys(param(params, "order"), _CAMEL_MEASURE), state.tz)
    select = param(params, "select")
    names = [php_str(n) for n in select] if isinstance(select, list) else []
    if names:
        found = [{k: v for k, v in m.items() if k in names} for m in found]
    return itemlist.page(found, param(params, "start"), "measures")


HANDLERS: dict[str, Handler] = {
    "crm.currency.list": currency_list,
    "crm.currency.get": currency_get,
    "crm.measure.list": measure_list,
    "catalog.measure.list": catalog_measure_list,
}
