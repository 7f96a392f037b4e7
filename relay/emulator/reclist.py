"""Legacy ``crm.*.list`` over any stored records (companies, contacts, requisites).

Same filter operators, select masks, ordering and 50-row pages as ``crm.deal.list``
(:mod:`relay.emulator.listing`): ``api-reference/crm/contacts/crm-contact-list.md``,
``api-reference/crm/companies/crm-company-list.md``,
``api-reference/crm/requisites/universal/crm-requisite-list.md``.  Multi-fields (``PHONE``,
``EMAIL``, ``WEB``, ``IM``) are not covered by ``*``; they are returned only when named in
``select``, and filter on them matches a whole ``VALUE`` exactly (``crm-contact-list.md``).
Unknown filter and order fields are silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any

from relay.emulator.core import Reply, param, validation
from relay.emulator.listing import PAGE_SIZE, compile_filter
from relay.emulator.values import intval, php_str, sort_key


@dataclass(frozen=True)
class Catalogue:
    """What a list method knows about its records' fields."""

    standard: Sequence[str]
    uf: Mapping[str, bool] = field(default_factory=dict)  # name -> multiple
    multi: Sequence[str] = ()
    default_select: Sequence[str] = ("*", "UF_*")
    text: frozenset[str] = frozenset()  # string fields: equality compares text, never numbers

    def known(self, name: str) -> bool:
        """True for a field the filter/order/select may use."""
        return name in self.standard or name in self.uf or name in self.multi


def _column(record: Mapping[str, Any], name: str, multi: Sequence[str]) -> Any:
    if name in multi:
        return [e["VALUE"] for e in record.get(name) or []]
    return record.get(name)


def _filter(cat: Catalogue, raw: Any, tz: timezone) -> Callable[[Mapping[str, Any]], bool]:
    """The filter semantics of ``crm.deal.list``; a multi-field is matched by its values."""
    return compile_filter(raw, tz, cat.known, lambda record, name: _column(record, name, cat.multi),
                          lambda name: name in cat.text or name in cat.multi)


def _select(cat: Catalogue, raw: Any) -> list[str]:
    if isinstance(raw, Mapping):
        raw = list(raw.values())
    names = [php_str(v) for v in raw] if isinstance(raw, list) and raw else list(cat.default_select)
    out: dict[str, None] = {"ID": None}
    for name in names:
        if name == "*":
            out.update(dict.fromkeys(cat.standard))
        elif name == "UF_*":
            out.update(dict.fromkeys(n for n, multiple in cat.uf.items() if not multiple))
        elif cat.known(name):
            out[name] = None
    return list(out)


def _project(record: Mapping[str, Any], columns: list[str], multi: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in columns:
        if name in multi:
            if record.get(name):  # an empty multi-field is left out, as in crm.*.get (UNVERIFIED)
                out[name] = [dict(e) for e in record[name]]
        else:
            out[name] = record.get(name)
    return out


def _sorter(name: str, tz: timezone) -> Callable[[Mapping[str, Any]], tuple[int, Any]]:
    return lambda record: sort_key(record.get(name), tz)


def list_records(cat: Catalogue, records: Iterable[Mapping[str, Any]], params: Mapping[str, Any],
                 tz: timezone) -> Reply:
    """Filter, order (default ``ID`` ascending), page by 50 and project ``records``."""
    matches = _filter(cat, param(params, "filter"), tz)
    found = sorted((r for r in records if matches(r)), key=lambda r: intval(r["ID"]))
    order = param(params, "order")
    if order not in (None, "", []) and not isinstance(order, Mapping):
        raise validation("Parameter 'order' must be array.")
    for name, direction in reversed(list((order or {}).items())):
        if cat.known(str(name)) and str(name) not in cat.multi:
            found.sort(key=_sorter(str(name), tz), reverse=php_str(direction).upper() == "DESC")
    columns = _select(cat, param(params, "select"))
    start = intval(param(params, "start", 0))
    if start == -1:  # no COUNT(*): no total, no next — settings/performance/huge-data.md
        return Reply([_project(r, columns, cat.multi) for r in found[:PAGE_SIZE]])
    start = max(start, 0)
    page = found[start:start + PAGE_SIZE]
    nxt = start + PAGE_SIZE if start + PAGE_SIZE < len(found) else None
    return Reply([_project(r, columns, cat.multi) for r in page], total=len(found), next=nxt)
