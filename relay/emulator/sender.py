"""Calls a portal makes to a handler, built exactly as Bitrix24 sends them.

* Events (outgoing webhook / ``event.bind``): form-encoded ``event``, ``event_handler_id``,
  ``data[FIELDS][ID]``, ``ts``, ``auth[...]`` (no OAuth tokens for an outgoing webhook) —
  ``api-reference/events/index.md``, ``local-integrations/local-webhooks.md``.
* Built-in "Webhook" automation rule: only ``document_id[0..2]`` (bizproc ``CBPWebHookActivity``;
  protocol notes §2).
* Application robot: ``workflow_id``, ``code``, ``document_id``, ``document_type``, ``event_token``,
  ``properties``, ``use_subscription``, ``timeout_duration``, ``ts``, ``auth[...]`` — protocol
  notes §3.2 (b24phpsdk ``IncomingRobotRequest``, b24pysdk ``OAuthWorkflowData``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

import requests

from relay.emulator.config import PortalConfig, random_token
from relay.phpquery import build_query

#: seen in third-party logs for the queue server (UNVERIFIED by Bitrix docs, protocol notes §1.2)
USER_AGENT = "Bitrix24 Webhook Engine"
SERVER_ENDPOINT = "https://oauth.bitrix.info/rest/"
FORM = "application/x-www-form-urlencoded"


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def event_payload(config: PortalConfig, event: str, deal_id: int, application_token: str | None = None,
                  *, handler_id: int = 1, ts: int | None = None,
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The nested event structure (all values strings, keys in the documented order)."""
    payload: dict[str, Any] = {
        "event": event.upper(),
        "event_handler_id": str(handler_id),
        "data": {"FIELDS": {"ID": str(deal_id)}},
        "ts": str(int(time.time()) if ts is None else ts),
        "auth": {
            "domain": config.domain,
            "client_endpoint": f"https://{config.domain}/rest/",
            "server_endpoint": SERVER_ENDPOINT,
            "member_id": config.member_id,
            "application_token": application_token or config.application_token,
        },
    }
    return _merge(payload, extra) if extra else payload


def robot_payload(deal_id: int) -> dict[str, Any]:
    """The built-in "Webhook" rule's body: the bizproc document id and nothing else."""
    return {"document_id": ["crm", "CCrmDocumentDeal", f"DEAL_{deal_id}"]}


def new_workflow_id() -> str:
    """A PHP ``uniqid('', true)``-looking workflow id (``6661bc2fd8a0e7.26405435``)."""
    return f"{secrets.token_hex(7)}.{secrets.randbelow(10**8):08d}"


def new_event_token(workflow_id: str) -> str:
    """An event token shaped like Bitrix24's (``<workflow>|<activity>|<signature>``)."""
    activity = "A" + "_".join(str(secrets.randbelow(90000) + 10000) for _ in range(4))
    return f"{workflow_id}|{activity}|{random_token(32)}.{secrets.token_hex(20)}"


def app_robot_payload(config: PortalConfig, deal_id: int, application_token: str | None,
                      event_token: str, *, code: str = "relay_deal", workflow_id: str | None = None,
                      properties: Mapping[str, Any] | None = None, ts: int | None = None) -> dict[str, Any]:
    """The application robot call of protocol notes §3.2 with a full OAuth ``auth`` block."""
    now = int(time.time()) if ts is None else ts
    payload: dict[str, Any] = {
        "workflow_id": workflow_id or event_token.split("|", 1)[0],
        "code": code,
        "document_id": ["crm", "CCrmDocumentDeal", f"DEAL_{deal_id}"],
        "document_type": ["crm", "CCrmDocumentDeal", "DEAL"],
        "event_token": event_token,
    }
    if properties:
        payload["properties"] = dict(properties)
    payload.update({
        "use_subscription": "Y",
        "timeout_duration": "0",
        "ts": str(now),
        "auth": {
            "access_token": random_token(70),
            "expires": str(now + 3600),
            "expires_in": "3600",
            "scope": "crm,bizproc",
            "domain": config.domain,
            "server_endpoint": SERVER_ENDPOINT,
            "status": "L",
            "client_endpoint": f"https://{config.domain}/rest/",
            "member_id": config.member_id,
            "user_id": str(config.user_id),
            "refresh_token": random_token(70),
            "application_token": application_token or config.application_token,
        },
    })
    return payload


def post_form(url: str, payload: Mapping[str, Any], *, timeout: float = 10.0) -> tuple[int, str]:
    """POST a PHP-bracket form body (brackets percent-encoded) like the queue server does."""
    body = build_query(payload)
    reply = requests.post(url, data=body.encode("utf-8"), timeout=timeout, allow_redirects=False,
                          headers={"Content-Type": FORM, "User-Agent": USER_AGENT})
    return reply.status_code, reply.text


def post_json(url: str, payload: Mapping[str, Any], *, timeout: float = 10.0) -> tuple[int, str]:
    """POST the same structure as JSON (a developer replaying an event with curl)."""
    reply = requests.post(url, json=payload, timeout=timeout, allow_redirects=False,
                          headers={"User-Agent": USER_AGENT})
    return reply.status_code, reply.text


def send_event(config: PortalConfig, handler_url: str, event: str, deal_id: int,
               application_token: str | None = None, *, encoding: str = "form",
               extra: Mapping[str, Any] | None = None, handler_id: int = 1,
               timeout: float = 10.0) -> tuple[int, str]:
    """Deliver one deal event to ``handler_url``; returns ``(status, body)``."""
    payload = event_payload(config, event, deal_id, application_token, handler_id=handler_id, extra=extra)
    if encoding == "json":
        return post_json(handler_url, payload, timeout=timeout)
    if encoding != "form":
        raise ValueError("encoding must be 'form' or 'json'")
    return post_form(handler_url, payload, timeout=timeout)


def send_robot(handler_url: str, deal_id: int, *, timeout: float = 10.0) -> tuple[int, str]:
    """Run the built-in "Webhook" automation rule against ``handler_url`` (query string kept)."""
    return post_form(handler_url, robot_payload(deal_id), timeout=timeout)


def send_app_robot(config: PortalConfig, handler_url: str, deal_id: int, application_token: str | None,
                   event_token: str, *, code: str = "relay_deal",
                   properties: Mapping[str, Any] | None = None, timeout: float = 10.0) -> tuple[int, str]:
    """Call an application robot's handler the way the workflow engine does."""
    payload = app_robot_payload(config, deal_id, application_token, event_token,
                                code=code, properties=properties)
    return post_form(handler_url, payload, timeout=timeout)
