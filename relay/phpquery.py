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

_KEY = re.compile(r"^([^\[\]]*)((?:\[[^\[\]]*\])*)(.*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")

#: a decoded body nests at most this deep; deeper keys are kept flat (PHP's max_input_nesting_level)
MAX_DEPTH = 16


def split_key(key: str) -> list[str]:
    """``'data[FIELDS][ID]'`` -> ``['data', 'FIELDS', 'ID']``; ``'a[]'`` -> ``['a', '']``."""
    m = _KEY.match(key)
    if not m or not m.group(1) or m.group(3) or len(_PART.findall(m.group(2))) > MAX_DEPTH:
        return [key]
    return [m.group(1), *_PART.findall(m.group(2))]


def _insert(node: dict[str, Any], parts: list[str], value: Any) -> None:
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "":  # "a[]": append with the next free integer key, like PHP
            part = str(sum(1 for k in node if k.isdigit()))
        if last:
            node[part] = value
            return
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        value = {k: _listify(v) for k, v in value.items()}
        if value and all(k.isdigit() for k in value):
            keys = sorted(value, key=int)
            if [int(k) for k in keys] == list(range(len(keys))):
                return [value[k] for k in keys]
        return value
    if isinstance(value, list):
        return [_listify(v) for v in value]
    return value


def nest_pairs(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Build a nested structure from ``(bracket_key, value)`` pairs; later keys win, like PHP."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        _insert(root, split_key(key), value)
    out = _listify(root)
    return out if isinstance(out, dict) else {}


def nest_mapping(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Nest bracket keys found at the top of an already-decoded object (e.g. a JSON body)."""
    return nest_pairs(flat.items())


def parse_query(query: str) -> dict[str, Any]:
    """Decode a PHP-style query string (``a[b]=1&c[]=x``) into nested dicts and lists."""
    return nest_pairs(parse_qsl(query, keep_blank_values=True))


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
