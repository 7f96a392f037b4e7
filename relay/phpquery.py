"""Pure: PHP-style query strings with bracket keys, both directions.

Bitrix24 posts events and robot calls as ``application/x-www-form-urlencoded`` with nested keys
(``data[FIELDS][ID]=7405``, ``document_id[2]=DEAL_123``) — ``api-reference/events/index.md``.
Batch commands carry their parameters the same way (``crm.deal.get?id=7405``), encoded like
PHP's ``http_build_query`` — ``settings/how-to-call-rest-api/batch.md``,
``settings/how-to-call-rest-api/data-encoding.md``.

Decoding accepts both percent-encoded and literal brackets (which the queue server sends is
UNVERIFIED).  Objects whose keys are exactly ``0..n-1`` become lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote_plus

_KEY = re.compile(r"([^\[\]]*)((?:\[[^\[\]]*\])*)(.*)", re.DOTALL)
_PART = re.compile(r"\[([^\[\]]*)\]")
_PHP_INT_MAX = 2**63 - 1

#: a decoded body nests at most this deep; deeper keys are kept flat (PHP's max_input_nesting_level)
MAX_DEPTH = 16


def _int_key(key: str) -> int | None:
    """The integer PHP makes of an array key (``"7"``), or None when it stays a string (``"07"``, ``"²"``)."""
    if key.isdigit() and key.isascii() and len(key) <= 19 and (key[0] != "0" or key == "0"):
        number = int(key)
        if number <= _PHP_INT_MAX:
            return number
    return None


def split_key(key: str, max_depth: int = MAX_DEPTH) -> list[str]:
    """``'data[FIELDS][ID]'`` -> ``['data', 'FIELDS', 'ID']``; ``'a[]'`` -> ``['a', '']``.

    Keys that are not ``name[part]...`` (``[x]``, ``a[b][``, ``]]``) or that nest deeper than
    ``max_depth`` stay one flat key.  Linear in the key's length.
    """
    if "[" not in key:
        return [key]
    m = _KEY.fullmatch(key)
    if not m or not m.group(1) or m.group(3):
        return [key]
    parts = _PART.findall(m.group(2))
    return [key] if len(parts) > max_depth else [m.group(1), *parts]


class _Node(dict[str, Any]):
    """An array being built; remembers PHP's next free integer key so that ``a[]`` is O(1)."""

    __slots__ = ("next_index",)

    def __init__(self, items: Iterable[tuple[str, Any]] = ()) -> None:
        super().__init__(items)
        ints = (_int_key(k) for k in self)
        self.next_index = max((n + 1 for n in ints if n is not None), default=0)

    def key_for(self, part: str) -> str:
        """``""`` (from ``a[]``) becomes the next free integer key: the largest one so far + 1."""
        return str(self.next_index) if part == "" else part

    def put(self, key: str, value: Any) -> None:
        number = _int_key(key)
        if number is not None and number >= self.next_index:
            self.next_index = number + 1
        self[key] = value


def _as_node(value: Any) -> _Node:
    """An already-decoded value (a JSON object or list) reached by a bracket key, as a node."""
    if isinstance(value, _Node):
        return value
    if isinstance(value, dict):
        return _Node((str(k), v) for k, v in value.items())
    if isinstance(value, list):
        return _Node((str(i), v) for i, v in enumerate(value))
    return _Node()  # a scalar is replaced, like PHP does for ``a=1&a[b]=2``


def _insert(root: _Node, parts: list[str], value: Any) -> None:
    node = root
    for part in parts[:-1]:
        key = node.key_for(part)
        child = node.get(key)
        if not isinstance(child, _Node):
            child = _as_node(child)
            node.put(key, child)
        node = child
    node.put(node.key_for(parts[-1]), value)


def _as_list(obj: dict[str, Any]) -> dict[str, Any] | list[Any]:
    """An object whose keys are exactly ``0..n-1`` (any order) becomes a list; linear."""
    items: list[Any] = [None] * len(obj)
    for key, value in obj.items():
        index = _int_key(key)
        if index is None or index >= len(items):
            return obj
        items[index] = value  # distinct keys below n: each index is set once
    return items if items else obj


def _listify(value: Any) -> Any:
    """Plain dicts and lists all the way down; recursive, so callers bound the depth."""
    if isinstance(value, dict):
        return _as_list({k: _listify(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_listify(v) for v in value]
    return value


def nest_pairs(pairs: Iterable[tuple[str, Any]], max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Build a nested structure from ``(bracket_key, value)`` pairs; later keys win, like PHP.

    Linear in the number and length of the keys (plus one pass over each decoded value reached).
    """
    root = _Node()
    for key, value in pairs:
        _insert(root, split_key(key, max_depth), value)
    out = _listify(root)
    return out if isinstance(out, dict) else {}


def nest_mapping(flat: Mapping[str, Any], max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Nest bracket keys found at the top of an already-decoded object (e.g. a JSON body).

    The values are walked recursively: the caller bounds their depth (``inbound.decode_body`` does).
    """
    return nest_pairs(flat.items(), max_depth)


def parse_query(query: str, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Decode a PHP-style query string (``a[b]=1&c[]=x``) into nested dicts and lists; linear.

    It does not limit the number of fields: a caller facing strangers counts ``&`` first.
    """
    return nest_pairs(parse_qsl(query, keep_blank_values=True), max_depth)


@dataclass(frozen=True)
class Ref:
    """A batch reference, written literally into a command: ``$result[name][0][ID]``."""

    command: str
    path: tuple[str | int, ...] = ()

    def render(self) -> str:
        return f"$result[{self.command}]" + "".join(f"[{p}]" for p in self.path)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _flatten(prefix: str, value: Any, out: list[str]) -> None:
    if value is None:  # http_build_query drops nulls
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}[{k}]" if prefix else str(k), v, out)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _flatten(f"{prefix}[{i}]", v, out)
    elif isinstance(value, Ref):
        out.append(f"{quote_plus(prefix)}={value.render()}")
    else:
        out.append(f"{quote_plus(prefix)}={quote_plus(_scalar(value))}")


def build_query(params: Mapping[str, Any]) -> str:
    """Encode like PHP ``http_build_query``; :class:`Ref` values stay literal for batch."""
    out: list[str] = []
    _flatten("", params, out)
    return "&".join(out)
