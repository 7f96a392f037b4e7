"""Pure: decode and authenticate a call to ``POST /b24/<source_id>``.

Three shapes arrive at the one handler URL:

* outgoing-webhook events ``ONCRMDEALADD`` / ``ONCRMDEALUPDATE``: form-encoded bracket keys
  ``event``, ``data[FIELDS][ID]``, ``auth[application_token]``, ``auth[member_id]``, ``auth[domain]``
  — ``api-reference/events/index.md``; authenticated by a constant-time comparison of
  ``auth[application_token]`` — ``api-reference/events/safe-event-handlers.md``;
* the built-in "Webhook" automation robot: only ``document_id[0..2]`` (``crm``,
  ``CCrmDocumentDeal``, ``DEAL_123``), no token (protocol notes §2) — authenticated by the
  ``?key=<robot_key>`` the integrator put into the robot's URL;
* application robots: ``document_id`` plus ``event_token`` and an ``auth[...]`` block with the
  application token (protocol notes §3.2).

Any of them may come as JSON (a developer replaying with curl), nested or with bracket keys.
Nothing from the body decides where API calls go: only configured portal URLs are used.

Bodies come from strangers before they are authenticated, so decoding is linear and bounded
(:class:`BodyLimits`, ``ingress.*``), cheap checks come first (:func:`check_key` needs only the
URL; fields are counted in the raw bytes), and every malformed body is a :class:`BadRequest`
with a message that names the problem — never another exception.
"""

from __future__ import annotations

import hmac
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from relay.errors import BadRequest, Forbidden
from relay.phpquery import nest_mapping, nest_pairs, parse_query

DEAL_EVENTS = frozenset({"ONCRMDEALADD", "ONCRMDEALUPDATE"})
DELETE_EVENT = "ONCRMDEALDELETE"  # relayed only when the source's mapping sets deletes.source
_DEAL_ID = re.compile(r"^[1-9][0-9]{0,18}$")
_DOC_ID = re.compile(r"^DEAL_([1-9][0-9]{0,18})$")
_PROPERTY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,49}")
#: an application robot's ``event_token`` (``<workflow id>|<activity>|<signature>``) is stored with the job, one per
#: line when calls merge: no control character (a NUL is refused by PostgreSQL, a line break would split it in two)
_EVENT_TOKEN = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,1024}")
_FORM_TYPES = frozenset({"", "application/x-www-form-urlencoded", "text/plain"})
_JSON_WS = b" \t\r\n"
#: from where it is matched, the next bracket outside JSON strings (possessive: linear, no backtracking)
_NEXT_BRACKET = re.compile(r'(?:[^"\[\]{}]|"[^"\\]*(?:\\.[^"\\]*)*+"?)*+([\[\]{}])', re.DOTALL)
_MAX_NUMBER_CHARS = 100  # a JSON number longer than this is refused (Python refuses ints over 4300 digits)
_PLAIN = re.compile(r"[A-Za-z0-9_.:+-]{1,64}")


@dataclass(frozen=True)
class SourceAuth:
    """What one source accepts: its secrets (plain strings) and optional portal pinning."""

    application_token: str | None = None
    robot_key: str | None = None
    member_id: str | None = None
    domain: str | None = None
    deletes: bool = False  # ONCRMDEALDELETE is relayed (the source's mapping has a delete policy)
    #: hosts an ``auth[client_endpoint]`` may name (default: ``domain``); a portal_url's host is one more
    endpoint_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class InboundCall:
    """An authenticated call: a deal to relay, or a well-formed call we do not handle."""

    kind: Literal["deal", "ignored"]
    trigger: str  # event name, "ROBOT" or "APP_ROBOT"
    deal_id: str | None = None
    event_token: str | None = None
    note: str = ""
    #: an application robot's settings (``properties[<code>]``), text values by code
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BodyLimits:
    """How much one body may hold: ``ingress.max_fields`` and ``ingress.max_depth``.

    PHP's ``max_input_vars`` (1000) and ``max_input_nesting_level`` (64); real Bitrix24 events and
    robot calls have fewer than 100 fields nested at most 3 deep.
    """

    max_fields: int = 1000
    max_depth: int = 16


def _shown(text: str, limit: int = 40) -> str:
    """A stranger's string fit for a log line or an answer: as is when plain, else quoted, escaped, cut."""
    if len(text) <= limit and _PLAIN.fullmatch(text):
        return text
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def _too_many_fields(limits: BodyLimits) -> BadRequest:
    return BadRequest(f"too many fields: more than {limits.max_fields} (ingress.max_fields)")


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not UTF-8 (invalid byte at offset {exc.start})") from None


def _json_int(text: str) -> int:
    if len(text) > _MAX_NUMBER_CHARS:
        raise BadRequest(f"JSON number with {len(text)} characters: at most {_MAX_NUMBER_CHARS} are accepted")
    return int(text)


def _json_float(text: str) -> float:
    if len(text) > _MAX_NUMBER_CHARS:
        raise BadRequest(f"JSON number with {len(text)} characters: at most {_MAX_NUMBER_CHARS} are accepted")
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(f"JSON number {_shown(text)} is out of range")
    return value


def _json_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not valid JSON")


def _check_text(text: str) -> None:
    """A JSON string may escape a lone surrogate (``"\\ud800"``), which no database or hash can encode."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadRequest(f"JSON string with a lone surrogate at character {exc.start}: not Unicode") from None


def _check_shape(data: dict[str, Any], limits: BodyLimits) -> None:
    """Refuse a decoded JSON object nesting deeper than ``max_depth``, holding too many values or
    a string that is not valid Unicode.

    Iterative (no recursion), so it is safe on any input json.loads returned.  Depth counts like
    bracket keys: ``{"data": {"FIELDS": {"ID": 1}}}`` is ``data[FIELDS][ID]``, depth 2.
    """
    stack: list[tuple[Any, int]] = [(data, 0)]
    count = 0
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limits.max_depth:
            raise BadRequest(f"JSON nests deeper than {limits.max_depth} levels (ingress.max_depth)")
        count += len(children)
        if count > limits.max_fields:
            raise BadRequest(f"too many JSON values: more than {limits.max_fields} (ingress.max_fields)")
        if isinstance(value, dict):
            for key in value:
                _check_text(key)
        stack.extend((child, depth + 1) for child in children)


def _check_nesting(text: str, limits: BodyLimits) -> None:
    """Refuse JSON text nesting deeper than ``max_depth`` (or opening more than ``max_fields`` + 1 arrays
    and objects) before :func:`json.loads` sees it.

    The C decoder recurses once per level, and how deep it gets depends on the interpreter and the
    thread's stack: a RecursionError, or (Python 3.13, a thread stack of 1 MiB or less) a crashed
    process.  Linear: the brackets outside strings are read one by one (strings are skipped inside the
    regex), and reading stops at the first level or container too many, or where the first value ends
    (json.loads reads no further either).  Same levels as :func:`_check_shape`.
    """
    limit = limits.max_depth + 1  # the body's own object is level 0
    if text.count("[") + text.count("{") <= limit:  # every real call: nothing to count
        return
    depth = opened = pos = 0
    while (found := _NEXT_BRACKET.match(text, pos)) is not None:
        pos = found.end()
        if found.group(1) in "[{":
            depth += 1
            opened += 1
            if depth > limit:
                raise BadRequest(f"JSON nests deeper than {limits.max_depth} levels (ingress.max_depth)")
            if opened > limits.max_fields + 1:  # each one but the body's object is a value
                raise BadRequest(f"too many JSON values: more than {limits.max_fields} (ingress.max_fields)")
        else:
            depth -= 1
            if depth <= 0:  # the first value is complete (or never opened): json.loads stops here too
                return


def json_object(text: str, limits: BodyLimits) -> dict[str, Any]:
    """A JSON object body, checked (nesting before parsing, values, numbers, Unicode); BadRequest otherwise."""
    _check_nesting(text, limits)
    try:
        data = json.loads(text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)
    except RecursionError:  # not expected after _check_nesting; kept as a second line
        raise BadRequest(f"JSON nests deeper than {limits.max_depth} levels (ingress.max_depth)") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError:  # anything else json.loads may raise on a malformed document
        raise BadRequest("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("JSON body must be an object")
    _check_shape(data, limits)
    return data


def decode_body(body: bytes, content_type: str, limits: BodyLimits = BodyLimits()) -> dict[str, Any]:
    """Decode a form or JSON body into nested dicts/lists; raise BadRequest when impossible.

    Linear in the body's size; refuses more than ``limits.max_fields`` fields (counted in the raw
    bytes before parsing) and JSON nesting deeper than ``limits.max_depth``.
    """
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype != "application/json" and ctype not in _FORM_TYPES:
        raise BadRequest(f"unsupported Content-Type {_shown(ctype, 60)}: "
                         "send application/x-www-form-urlencoded or application/json")
    if not body.strip():
        raise BadRequest("empty body: expected a Bitrix24 event or robot call")
    if ctype == "application/json" or body.lstrip(_JSON_WS)[:1] == b"{":  # curl -d '{...}' says form
        return nest_mapping(json_object(_utf8(body), limits), limits.max_depth)
    if body.count(b"&") >= limits.max_fields:
        raise _too_many_fields(limits)
    return parse_query(_utf8(body).strip(), limits.max_depth)


def decode_pairs(pairs: Iterable[tuple[str, Any]], limits: BodyLimits = BodyLimits()) -> dict[str, Any]:
    """Nest already-split fields (a multipart form) under the same limits as :func:`decode_body`."""
    fields = list(pairs)
    if len(fields) > limits.max_fields:
        raise _too_many_fields(limits)
    if not fields:
        raise BadRequest("empty body: expected a Bitrix24 event or robot call")
    return nest_pairs(fields, limits.max_depth)


def _text(value: Any) -> str | None:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    return None


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


def _check_pinning(auth: Mapping[str, Any], source: SourceAuth, required: bool) -> None:
    member, domain = _text(auth.get("member_id")), _text(auth.get("domain"))
    if source.member_id and (member is not None or required) and member != source.member_id:
        raise Forbidden("auth[member_id] does not match this source's member_id")
    if source.domain and (domain is not None or required) and (domain or "").lower() != source.domain.lower():
        raise Forbidden("auth[domain] does not match this source's domain")
    endpoint = _text(auth.get("client_endpoint"))
    hosts = {h.lower() for h in (*source.endpoint_hosts, source.domain or "") if h}
    if hosts and endpoint and host_of(endpoint) not in hosts:
        raise Forbidden("auth[client_endpoint] points at another host than this source's domain")


def host_of(url: str) -> str:
    """The lower-case host of a URL from a body; ``""`` when it has none or cannot be parsed."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:  # "https://[::1" and other broken URLs
        return ""


def check_key(key: str | None, source: SourceAuth) -> None:
    """Refuse what the URL alone shows to be unauthenticated, before the body is read.

    A ``?key=`` that is given must be the source's ``robot_key`` (when it has one), even if the
    body also carries a valid application token; without ``?key=``, a source that has no
    ``application_token`` accepts nothing.
    """
    if key is not None and source.robot_key:
        if not _same(key, source.robot_key):
            raise Forbidden("wrong key")
    elif source.application_token is None:
        if key is not None:
            raise Forbidden("wrong key")
        if source.robot_key:
            raise Forbidden("no credentials: this source accepts only calls with ?key=")
        raise Forbidden("this source has neither an application_token nor a robot_key: it accepts no calls")


def _authenticate(payload: Mapping[str, Any], key: str | None, source: SourceAuth) -> None:
    check_key(key, source)
    auth = payload.get("auth")
    auth = auth if isinstance(auth, Mapping) else {}
    token = _text(auth.get("application_token"))
    if source.robot_key and _same(key, source.robot_key):
        _check_pinning(auth, source, required=False)
        return
    if source.application_token and _same(token, source.application_token):
        _check_pinning(auth, source, required=True)
        return
    if key is not None:
        raise Forbidden("wrong key")
    if token is not None:
        raise Forbidden("wrong auth[application_token]")
    raise Forbidden("no credentials: expected auth[application_token] or ?key=")


def _event(payload: Mapping[str, Any], deletes: bool = False) -> InboundCall:
    event = payload.get("event")
    if not isinstance(event, str):
        raise BadRequest(f"event must be a string, got {type(event).__name__}")
    name = event.strip().upper()
    if not name:
        raise BadRequest("event is empty")
    if name not in DEAL_EVENTS and not (deletes and name == DELETE_EVENT):
        return InboundCall(kind="ignored", trigger=_shown(name, 64), note=f"event {_shown(name, 64)} is not relayed")
    data = payload.get("data")
    fields = data.get("FIELDS") if isinstance(data, Mapping) else None
    if not isinstance(fields, Mapping) or "ID" not in fields:
        raise BadRequest("data[FIELDS][ID] is missing")
    deal_id = _text(fields["ID"])
    if deal_id is None:
        raise BadRequest(f"data[FIELDS][ID] must be a positive integer, got {type(fields['ID']).__name__}")
    if not _DEAL_ID.match(deal_id.strip()):
        raise BadRequest(f"data[FIELDS][ID] must be a positive integer, got {deal_id[:40]!r}")
    return InboundCall(kind="deal", trigger=name, deal_id=deal_id.strip())


def _robot(payload: Mapping[str, Any]) -> InboundCall:
    doc = payload.get("document_id")
    trigger = "APP_ROBOT" if payload.get("event_token") else "ROBOT"
    if not isinstance(doc, list) or len(doc) != 3 or not all(isinstance(p, str) for p in doc):
        raise BadRequest("document_id must have three parts: document_id[0..2], e.g. crm, CCrmDocumentDeal, DEAL_123")
    if doc[1] != "CCrmDocumentDeal":
        return InboundCall(kind="ignored", trigger=trigger, note=f"document type {_shown(doc[1])} is not relayed")
    match = _DOC_ID.match(doc[2].strip())
    if not match:
        raise BadRequest(f"document_id[2] must look like DEAL_123, got {doc[2][:40]!r}")
    return InboundCall(kind="deal", trigger=trigger, deal_id=match.group(1), event_token=_event_token(payload),
                       properties=_properties(payload))


def _properties(payload: Mapping[str, Any]) -> dict[str, str]:
    """An application robot's ``properties[<code>]`` as text (lists joined with ", "); at most 50."""
    raw = payload.get("properties")
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, str] = {}
    for code, value in list(raw.items())[:50]:
        if not isinstance(code, str) or not _PROPERTY.fullmatch(code):
            continue
        items = value if isinstance(value, list) else [value]
        text = ", ".join(str(v) for v in items if isinstance(v, (str, int, float)) and not isinstance(v, bool))
        out[code] = text[:2000]
    return out


def _event_token(payload: Mapping[str, Any]) -> str | None:
    """The call's ``event_token`` fit to store, None without one; BadRequest when it cannot be one."""
    value = payload.get("event_token")
    if value is None or value == "":
        return None
    token = _text(value)
    if token is None:
        raise BadRequest(f"event_token must be a string, got {type(value).__name__}")
    if not _EVENT_TOKEN.fullmatch(token):
        raise BadRequest(f"event_token must be 1 to 1024 characters without control characters, got {len(token)} "
                         "characters" + (" with a control character" if len(token) <= 1024 else ""))
    return token


def interpret(payload: Mapping[str, Any], key: str | None, source: SourceAuth) -> InboundCall:
    """Authenticate a decoded call, then say which deal it is about (or that it is ignored)."""
    is_event, is_robot = "event" in payload, "document_id" in payload
    if not is_event and not is_robot:
        raise BadRequest("body has neither 'event' nor 'document_id': not a Bitrix24 event or robot call")
    _authenticate(payload, key, source)
    return _event(payload, source.deletes) if is_event else _robot(payload)
