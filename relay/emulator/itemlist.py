"""``crm.item.list`` and ``crm.item.productrow.list`` over camelCase records: filter, order, pages.

Prefixes ``>=``, ``>``, ``<=``, ``<``, ``@`` (IN), ``!@``, ``%``, ``=%``/``%=``, ``!%``, ``=``, ``!=``,
``!``; a field that cannot be filtered or ordered by is ``INVALID_ARG_VALUE``; pages of 50 with
``total``/``next`` — ``api-reference/crm/universal/crm-item-list.md``.  ``=`` "works with arrays as
well" — ``api-reference/crm/universal/product-rows/crm-item-productrow-list.md``.  The ``logic: OR``
nested filter groups of ``crm-item-list.md`` are not emulated.

String fields (:data:`TEXT_FIELDS`: codes, stamps, names) are matched as text, case-insensitively:
``=xmlId`` ``"000123"`` does not find ``"123"`` (UNVERIFIED: the database's string comparison,
inferred from the ``string`` type of these fields in ``api-reference/crm/universal/object-fields.md``).
Other fields compare numerically or as dates when both sides allow it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from datetime import timezone
from typing import Any

from relay.emulator.core import EmuError, Reply
from relay.emulator.values import compare, intval, php_str, sort_key

PAGE_SIZE = 50
_PREFIXES = ("!=%", "!%=", ">=", "<=", "!=", "!@", "=%", "%=", "!%", ">", "<", "=", "!", "@", "%")

Record = Mapping[str, Any]
#: fields of type ``string``/``text`` whose equality tests compare text — object-fields.md
TEXT_FIELDS = frozenset({
    "title", "xmlId", "accountNumber", "originatorId", "originId", "comments", "sourceDescription",
    "additionalInfo", "productName",
})


def split_key(key: str) -> tuple[str, str]:
    """``'>=id'`` -> ``('>=', 'id')``; a plain key is ``('=', key)``."""
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return prefix, key[len(prefix):]
    return "=", key


def invalid(text: str) -> EmuError:
    """``INVALID_ARG_VALUE`` (HTTP 400) — ``crm-item-list.md`` "Possible Error Codes"."""
    return EmuError(400, "INVALID_ARG_VALUE", text)


def _options(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        return list(value.values())
    return [value]


def _like(value: Any, wanted: Any, anchored: bool) -> bool:
    text, needle = php_str(value).casefold(), php_str(wanted).casefold()
    if not anchored:
        return needle in text
    pattern = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in needle)
    return re.fullmatch(pattern, text, re.DOTALL) is not None


def _same(value: Any, wanted: Any, tz: timezone, text: bool) -> bool:
    if text or value in (None, "") or wanted in (None, ""):
        return php_str(value).casefold() == php_str(wanted).casefold()
    return compare(value, wanted, tz) == 0


def _one(op: str, value: Any, wanted: Any, tz: timezone, text: bool = False) -> bool:
    if op in ("=", "@", "!", "!=", "!@"):
        hit = any(_same(value, w, tz, text) for w in _options(wanted))
        return hit if op in ("=", "@") else not hit
    if op in ("%", "!%"):
        return _like(value, wanted, False) != (op == "!%")
    if op in ("=%", "%=", "!=%", "!%="):
        return _like(value, wanted, True) != op.startswith("!")
    if value in (None, ""):
        return False
    return compare(value, wanted, tz) in {">": (1,), ">=": (0, 1), "<": (-1,), "<=": (-1, 0)}[op]


def build_filter(raw: Any, allowed: Collection[str], tz: timezone,
                 text: Collection[str] = TEXT_FIELDS) -> Callable[[Record], bool]:
    """Compile ``filter``; a key outside ``allowed`` is ``INVALID_ARG_VALUE``; ``text`` fields compare as text."""
    if raw in (None, "", []):
        return lambda _r: True
    if not isinstance(raw, Mapping):
        raise invalid("Invalid filter: filter must be an object")
    tests: list[tuple[str, str, Any]] = []
    for key, wanted in raw.items():
        op, name = split_key(str(key))
        if name not in allowed:
            raise invalid(f"Invalid filter: field '{name}' is not allowed in filter")
        tests.append((name, op, wanted))

    def matches(record: Record) -> bool:
        for name, op, wanted in tests:
            value = record.get(name)
            values = value if isinstance(value, list) else [value]
            negative = op.startswith("!")
            as_text = name in text
            results = [_one(op, v, wanted, tz, as_text) for v in values] or [_one(op, None, wanted, tz, as_text)]
            if not (all(results) if negative else any(results)):
                return False
        return True

    return matches


def order_keys(raw: Any, allowed: Collection[str]) -> list[tuple[str, bool]]:
    """``order`` as ``[(field, descending)]``; bad field or direction is ``INVALID_ARG_VALUE``."""
    if not isinstance(raw, Mapping):
        return []
    out: list[tuple[str, bool]] = []
    for name, direction in raw.items():
        if str(name) not in allowed:
            raise invalid(f"Invalid order: field '{name}' is not allowed in order")
        way = php_str(direction).upper()
        if way not in ("ASC", "DESC"):
            raise invalid(f"Invalid order: allowed sort directions are ASC, DESC. But got '{direction}' "
                          f"for field '{name}'")
        out.append((str(name), way == "DESC"))
    return out


def page(found: list[dict[str, Any]], start_raw: Any, key: str) -> Reply:
    """One page of 50 wrapped as ``{key: [...]}``; ``start=-1`` drops ``total`` and ``next``."""
    start = intval(start_raw or 0)
    if start == -1:
        return Reply({key: found[:PAGE_SIZE]})
    start = max(start, 0)
    nxt = start + PAGE_SIZE if start + PAGE_SIZE < len(found) else None
    return Reply({key: found[start:start + PAGE_SIZE]}, total=len(found), next=nxt)


def sort_records(found: list[dict[str, Any]], keys: list[tuple[str, bool]], tz: timezone) -> None:
    """Stable multi-key sort in place (``id`` ascending first)."""
    found.sort(key=lambda r: intval(r.get("id")))
    for name, descending in reversed(keys):

        def column(record: Mapping[str, Any], field: str = name) -> tuple[int, Any]:
            return sort_key(record.get(field), tz)

        found.sort(key=column, reverse=descending)
