"""``crm.deal.list``: filter operators, select masks, ordering and 50-row pages.

Operators are key prefixes (``>=``, ``>``, ``<=``, ``<``, ``@``, ``!@``, ``%``, ``=%``, ``%=``,
``=``, ``!=``, ``!``); ``*`` = standard fields, ``UF_*`` = custom fields except multiple; page size
50 with ``total``/``next``; ``start=-1`` skips counting — ``api-reference/crm/deals/crm-deal-list.md``,
``settings/how-to-call-rest-api/list-methods-pecularities.md``, ``settings/performance/huge-data.md``.
Unknown filter fields are silently ignored, exactly like the real portal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import timezone
from typing import Any

from relay.emulator.config import PortalConfig
from relay.emulator.core import Reply, param, validation
from relay.emulator.schema import VISIBLE, is_known, uf_is_multiple
from relay.emulator.values import compare, intval, php_str, sort_key

PAGE_SIZE = 50
_PREFIXES = (">=", "<=", "!=", "!@", "=%", "%=", ">", "<", "=", "!", "@", "%")

Test = Callable[[Any], bool]


def split_key(key: str) -> tuple[str, str]:
    """``'>=DATE_MODIFY'`` -> ``('>=', 'DATE_MODIFY')``; a plain key is ``('=', key)``."""
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return prefix, key[len(prefix):]
    return "=", key


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        return list(value.values())
    return [value]


def _equal(stored: Any, wanted: Any, tz: timezone, text: bool = False) -> bool:
    if stored is None or stored == "":
        return php_str(wanted) == ""
    if php_str(wanted) == "":
        return False
    if text:  # a string column: "01234567" is not "1234567"
        return php_str(stored).casefold() == php_str(wanted).casefold()
    return compare(stored, wanted, tz) == 0


def _like(pattern: str) -> re.Pattern[str]:
    parts = (".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE | re.DOTALL)


def _test(op: str, wanted: Any, tz: timezone, text: bool = False) -> Test:
    """A predicate on one stored scalar value for operator ``op`` (``text``: compare as strings)."""
    if op in ("=", "@", "!", "!=", "!@"):
        options = _as_list(wanted) if op in ("@", "!@") or isinstance(wanted, list) else [wanted]
        hit: Test = lambda v: any(_equal(v, w, tz, text) for w in options)  # noqa: E731
        return hit if op in ("=", "@") else (lambda v: not hit(v))
    if op == "%":
        needle = php_str(wanted).casefold()
        return lambda v: v is not None and needle in php_str(v).casefold()
    if op in ("=%", "%="):
        pattern = _like(php_str(wanted))
        return lambda v: v is not None and bool(pattern.match(php_str(v)))
    sign = {">": (1,), ">=": (0, 1), "<": (-1,), "<=": (-1, 0)}[op]
    return lambda v: v not in (None, "") and compare(v, wanted, tz) in sign


def compile_filter(raw: Any, tz: timezone, known: Callable[[str], bool],
                   column: Callable[[Mapping[str, Any], str], Any],
                   text: Callable[[str], bool] = lambda _name: False) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a ``filter`` parameter into a predicate over stored records: keys whose field is not
    ``known`` are silently ignored, like Bitrix24 (a typo filters nothing); ``column`` reads a field;
    equality on a ``text`` field compares strings (UNVERIFIED: a string column never equals by number)."""
    if raw in (None, "", []):
        return lambda _record: True
    if not isinstance(raw, Mapping):
        raise validation("Parameter 'filter' must be array.")
    tests: list[tuple[str, bool, Test]] = []
    for key, wanted in raw.items():
        op, name = split_key(str(key))
        if known(name):
            tests.append((name, op in ("!", "!=", "!@"), _test(op, wanted, tz, text(name))))

    def matches(record: Mapping[str, Any]) -> bool:
        for name, negative, test in tests:
            value = column(record, name)
            if isinstance(value, list):  # multiple field: any item matches (all, when negated)
                ok = all(map(test, value)) if negative else any(map(test, value))
            else:
                ok = test(value)
            if not ok:
                return False
        return True

    return matches


def build_filter(config: PortalConfig, raw: Any, tz: timezone) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a ``filter`` parameter into a predicate over stored deals."""
    return compile_filter(raw, tz, lambda name: is_known(config, name), lambda deal, name: deal.get(name))


def resolve_select(config: PortalConfig, raw: Any) -> list[str]:
    """Expand ``select``: ``*``, ``UF_*``, explicit names; default ``*`` + ``UF_*``; ``ID`` always."""
    names = [php_str(v) for v in _as_list(raw)] if raw not in (None, "", []) else ["*", "UF_*"]
    out: dict[str, None] = {"ID": None}
    for name in names:
        if name == "*":
            out.update(dict.fromkeys(VISIBLE))
        elif name == "UF_*":
            out.update(dict.fromkeys(n for n in config.uf_fields if not uf_is_multiple(config, n)))
        elif name in VISIBLE or name in config.uf_fields:
            out[name] = None
    return list(out)


def _order(config: PortalConfig, raw: Any) -> list[tuple[str, bool]]:
    if not isinstance(raw, Mapping):
        return []
    out: list[tuple[str, bool]] = []
    for name, direction in raw.items():
        if is_known(config, str(name)):
            out.append((str(name), php_str(direction).upper() == "DESC"))
    return out


def _column_key(name: str, tz: timezone) -> Callable[[Mapping[str, Any]], tuple[int, Any]]:
    return lambda deal: sort_key(deal.get(name), tz)


def list_deals(config: PortalConfig, deals: Iterable[Mapping[str, Any]], params: Mapping[str, Any],
               tz: timezone) -> Reply:
    """Run ``crm.deal.list`` over stored deals: filter, order, page, project."""
    matches = build_filter(config, param(params, "filter"), tz)
    found = [d for d in deals if matches(d)]
    found.sort(key=lambda d: intval(d["ID"]))
    for name, descending in reversed(_order(config, param(params, "order"))):
        found.sort(key=_column_key(name, tz), reverse=descending)
    columns = resolve_select(config, param(params, "select"))
    start = intval(param(params, "start", 0))
    if start == -1:  # no COUNT(*): no total, no next — settings/performance/huge-data.md
        page = found[:PAGE_SIZE]
        return Reply([{c: d.get(c) for c in columns} for d in page])
    start = max(start, 0)
    page = found[start:start + PAGE_SIZE]
    nxt = start + PAGE_SIZE if start + PAGE_SIZE < len(found) else None
    return Reply([{c: d.get(c) for c in columns} for d in page], total=len(found), next=nxt)
