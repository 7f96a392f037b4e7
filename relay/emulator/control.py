"""The ``/_emu/`` control API: seed and inspect a portal, inject faults, trigger outgoing calls.

JSON in and out, no auth (the server listens on 127.0.0.1 only), never logged as a REST
request and never rate-limited.  Routes are listed in :data:`ROUTES_HELP`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import requests

from relay.emulator import appcontrol
from relay.emulator.core import EmuError
from relay.emulator.portal import Portal

ROUTES_HELP = [
    "GET /_emu/info", "POST /_emu/reset", "GET|POST /_emu/deals", "GET|PATCH|DELETE /_emu/deals/<id>",
    "GET /_emu/comments[?deal_id=N]", "GET /_emu/notifications", "GET /_emu/event_sends",
    "GET|DELETE /_emu/requests", "GET|POST|DELETE /_emu/faults", "POST /_emu/event_tokens",
    "POST /_emu/send_event", "POST /_emu/send_robot", "POST /_emu/send_app_robot",
    "POST /_emu/bindings", "GET /_emu/deliveries", "GET|POST /_emu/products", "GET /_emu/items/<entityTypeId>",
    *appcontrol.ROUTES_HELP,
]

Result = tuple[int, Any]
_DEAL = re.compile(r"^/_emu/deals/(\d+)$")


def _need(body: Mapping[str, Any], *keys: str) -> None:
    missing = [k for k in keys if k not in body]
    if missing:
        raise ValueError(f"missing key(s): {', '.join(missing)}")


def _deal_route(portal: Portal, verb: str, deal_id: int, body: Mapping[str, Any]) -> Result:
    if verb == "GET":
        deal = portal.deal(deal_id)
        if deal is None:
            return 404, {"error": "NOT_FOUND", "error_description": f"deal {deal_id} not found"}
        return 200, {"deal": deal, "rows": portal.rows(deal_id), "comments": portal.comments(deal_id)}
    if verb == "PATCH":
        fields = body.get("fields", {k: v for k, v in body.items() if k != "rows"})
        portal.update_deal(deal_id, fields)
        if "rows" in body:
            portal.set_rows(deal_id, body["rows"] or [])
        return 200, {"ok": True}
    if verb == "DELETE":
        portal.delete_deal(deal_id)
        return 200, {"ok": True}
    return 405, {"error": "METHOD_NOT_ALLOWED", "error_description": verb}


def _send(portal: Portal, what: str, body: Mapping[str, Any]) -> Result:
    if what == "send_event":
        _need(body, "handler_url", "deal_id")
        status, text = portal.send_event(
            body["handler_url"], body.get("event", "ONCRMDEALUPDATE"), int(body["deal_id"]),
            body.get("application_token"), encoding=body.get("encoding", "form"), extra=body.get("extra"))
    elif what == "send_robot":
        _need(body, "handler_url", "deal_id")
        status, text = portal.send_robot(body["handler_url"], int(body["deal_id"]))
    else:
        _need(body, "handler_url", "deal_id")
        status, text = portal.send_app_robot(
            body["handler_url"], int(body["deal_id"]), body.get("application_token"),
            body.get("event_token"), body.get("code", "relay_deal"), body.get("properties"))
    return 200, {"status": status, "body": text}


def _ok(action: Callable[[], object]) -> Result:
    action()
    return 200, {"ok": True}


def _simple_routes(portal: Portal) -> dict[tuple[str, str], Callable[[Mapping[str, Any], Mapping[str, Any]], Result]]:
    cfg = portal.config
    return {
        ("GET", "/_emu/info"): lambda q, b: (200, {
            "domain": cfg.domain, "member_id": cfg.member_id, "user_id": cfg.user_id,
            "deals": len(portal.deals()), "rate_level": portal.rate_level(), "routes": ROUTES_HELP}),
        ("POST", "/_emu/reset"): lambda q, b: _ok(portal.reset),
        ("GET", "/_emu/deals"): lambda q, b: (200, portal.deals()),
        ("POST", "/_emu/deals"): lambda q, b: (200, {"id": portal.add_deal(b.get("fields", {}), b.get("rows"))}),
        ("GET", "/_emu/comments"): lambda q, b: (200, portal.comments(int(q["deal_id"]) if q.get("deal_id") else None)),
        ("GET", "/_emu/notifications"): lambda q, b: (200, portal.notifications()),
        ("GET", "/_emu/event_sends"): lambda q, b: (200, portal.event_sends()),
        ("GET", "/_emu/requests"): lambda q, b: (200, [r.as_dict() for r in portal.requests]),
        ("DELETE", "/_emu/requests"): lambda q, b: _ok(portal.reset_log),
        ("GET", "/_emu/faults"): lambda q, b: (200, [f.as_dict() for f in portal.faults()]),
        ("POST", "/_emu/faults"): lambda q, b: (200, portal.inject(
            str(b.get("kind")), b.get("method"), int(b.get("times", 1)),
            **{k: v for k, v in b.items() if k not in ("kind", "method", "times")}).as_dict()),
        ("DELETE", "/_emu/faults"): lambda q, b: _ok(portal.clear_faults),
        ("POST", "/_emu/event_tokens"): lambda q, b: _ok(lambda: portal.register_event_token(str(b["token"]))),
        ("POST", "/_emu/send_event"): lambda q, b: _send(portal, "send_event", b),
        ("POST", "/_emu/send_robot"): lambda q, b: _send(portal, "send_robot", b),
        ("POST", "/_emu/send_app_robot"): lambda q, b: _send(portal, "send_app_robot", b),
        ("POST", "/_emu/bindings"): lambda q, b: (200, {"handler_id": portal.bind_outgoing(
            b["handler_url"], b.get("events", ["ONCRMDEALADD", "ONCRMDEALUPDATE"]),
            b.get("application_token"), include_rest=bool(b.get("include_rest"))).handler_id}),
        ("GET", "/_emu/deliveries"): lambda q, b: (200, portal.deliveries()),
        ("GET", "/_emu/products"): lambda q, b: (200, portal.products()),
        ("POST", "/_emu/products"): lambda q, b: (200, {"id": portal.add_product(
            str(b["name"]), float(b.get("price", 0)), b.get("xml_id"), currency=b.get("currency"))}),
        ("GET", "/_emu/items/2"): lambda q, b: (200, portal.items(2)),
        ("GET", "/_emu/items/31"): lambda q, b: (200, portal.items(31)),
        **appcontrol.routes(portal),
    }


def handle_control(portal: Portal, verb: str, path: str, query: Mapping[str, Any], body: Any) -> Result:
    """Dispatch one control request; returns ``(status, json_body)``."""
    path = path.rstrip("/") or path
    data: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    try:
        match = _DEAL.match(path)
        if match:
            return _deal_route(portal, verb, int(match.group(1)), data)
        route = _simple_routes(portal).get((verb, path))
        if route is None:
            return 404, {"error": "NOT_FOUND", "error_description": f"no control route {verb} {path}",
                         "routes": ROUTES_HELP}
        return route(query, data)
    except EmuError as exc:
        return exc.status, exc.body()
    except (ValueError, KeyError, TypeError) as exc:
        return 400, {"error": "BAD_REQUEST", "error_description": f"{type(exc).__name__}: {exc}"}
    except requests.RequestException as exc:
        return 502, {"error": "HANDLER_UNREACHABLE", "error_description": type(exc).__name__}
