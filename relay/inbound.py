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
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from relay.errors import BadRequest, Forbidden
from relay.phpquery import nest_mapping, parse_query

DEAL_EVENTS = frozenset({"ONCRMDEALADD", "ONCRMDEALUPDATE"})
_DEAL_ID = re.compile(r"^[1-9][0-9]{0,18}$")
_DOC_ID = re.compile(r"^DEAL_([1-9][0-9]{0,18})$")


@dataclass(frozen=True)
class SourceAuth:
    """What one source accepts: its secrets (plain strings) and optional portal pinning."""

    application_token: str | None = None
    robot_key: str | None = None
    member_id: str | None = None
    domain: str | None = None


@dataclass(frozen=True)
class InboundCall:
    """An authenticated call: a deal to relay, or a well-formed call we do not handle."""

    kind: Literal["deal", "ignored"]
    trigger: str  # event name, "ROBOT" or "APP_ROBOT"
    deal_id: str | None = None
    event_token: str | None = None
    note: str = ""


def decode_body(body: bytes, content_type: str) -> dict[str, Any]:
    """Decode a form or JSON body into nested dicts/lists; raise BadRequest when impossible."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    text = body.decode("utf-8", errors="strict") if body else ""
    stripped = text.lstrip()
    if ctype == "application/json" or stripped.startswith("{"):  # curl -d '{...}' says form
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BadRequest(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        if not isinstance(data, dict):
            raise BadRequest("JSON body must be an object")
        return nest_mapping(data)
    if ctype in ("", "application/x-www-form-urlencoded", "text/plain"):
        if not text.strip():
            raise BadRequest("empty body: expected a Bitrix24 event or robot call")
        return parse_query(text.strip())
    raise BadRequest(f"unsupported Content-Type {ctype!r}: send application/x-www-form-urlencoded or application/json")


def _text(value: Any) -> str | None:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    return None


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _check_pinning(auth: Mapping[str, Any], source: SourceAuth, required: bool) -> None:
    member, domain = _text(auth.get("member_id")), _text(auth.get("domain"))
    if source.member_id and (member is not None or required) and member != source.member_id:
        raise Forbidden("auth[member_id] does not match this source's member_id")
    if source.domain and (domain is not None or required) and (domain or "").lower() != source.domain.lower():
        raise Forbidden("auth[domain] does not match this source's domain")


def _authenticate(payload: Mapping[str, Any], key: str | None, source: SourceAuth) -> None:
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


def _event(payload: Mapping[str, Any]) -> InboundCall:
    name = str(payload.get("event", "")).strip().upper()
    if not name:
        raise BadRequest("event is empty")
    if name not in DEAL_EVENTS:
        return InboundCall(kind="ignored", trigger=name, note=f"event {name} is not relayed")
    data = payload.get("data")
    fields = data.get("FIELDS") if isinstance(data, Mapping) else None
    deal_id = _text(fields.get("ID")) if isinstance(fields, Mapping) else None
    if deal_id is None:
        raise BadRequest("data[FIELDS][ID] is missing")
    if not _DEAL_ID.match(deal_id.strip()):
        raise BadRequest(f"data[FIELDS][ID] must be a positive integer, got {deal_id[:40]!r}")
    return InboundCall(kind="deal", trigger=name, deal_id=deal_id.strip())


def _robot(payload: Mapping[str, Any]) -> InboundCall:
    doc = payload.get("document_id")
    trigger = "APP_ROBOT" if payload.get("event_token") else "ROBOT"
    if not isinstance(doc, list) or len(doc) != 3 or not all(isinstance(p, str) for p in doc):
        raise BadRequest("document_id must have three parts: document_id[0..2], e.g. crm, CCrmDocumentDeal, DEAL_123")
    if doc[1] != "CCrmDocumentDeal":
        return InboundCall(kind="ignored", trigger=trigger, note=f"document type {doc[1][:40]} is not relayed")
    match = _DOC_ID.match(doc[2].strip())
    if not match:
        raise BadRequest(f"document_id[2] must look like DEAL_123, got {doc[2][:40]!r}")
    token = _text(payload.get("event_token"))
    return InboundCall(kind="deal", trigger=trigger, deal_id=match.group(1), event_token=token)


def interpret(payload: Mapping[str, Any], key: str | None, source: SourceAuth) -> InboundCall:
    """Authenticate a decoded call, then say which deal it is about (or that it is ignored)."""
    is_event, is_robot = "event" in payload, "document_id" in payload
    if not is_event and not is_robot:
        raise BadRequest("body has neither 'event' nor 'document_id': not a Bitrix24 event or robot call")
    _authenticate(payload, key, source)
    return _event(payload) if is_event else _robot(payload)
