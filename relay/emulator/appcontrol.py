"""``/_emu/app/…`` control routes: install/uninstall an application, expire its tokens, run a robot, inspect.

JSON in and out like the rest of :mod:`relay.emulator.control`; the helpers are in :mod:`relay.emulator.app`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay.emulator.portal import Portal

Route = Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[int, Any]]

ROUTES_HELP = [
    "POST /_emu/app/install", "POST /_emu/app/uninstall", "GET /_emu/app", "POST /_emu/app/expire_tokens",
    "POST /_emu/app/run_robot", "GET /_emu/app/robots", "GET /_emu/app/bindings", "GET /_emu/app/offline",
    "GET /_emu/app/robot_runs", "GET /_emu/app/robot_answers", "GET /_emu/app/oauth_requests",
]


def _install(portal: Portal, body: Mapping[str, Any]) -> tuple[int, Any]:
    options = {k: body[k] for k in ("scope", "version", "language_id", "application_token") if k in body}
    status, text = portal.install_app(str(body["handler_url"]), body.get("install_url"), body.get("client_id"),
                                      body.get("client_secret"), **options)
    return 200, {"status": status, "body": text, **portal.app_tokens(body.get("client_id"))}


def _uninstall(portal: Portal, body: Mapping[str, Any]) -> tuple[int, Any]:
    posts = portal.uninstall_app(body.get("handler_url"), clean=bool(body.get("clean", True)),
                                 client_id=body.get("client_id"))
    return 200, {"posts": [{"status": status, "body": text} for status, text in posts]}


def _info(portal: Portal, client_id: str | None) -> tuple[int, Any]:
    return 200, {**portal.app_tokens(client_id), "refresh_count": portal.oauth_refresh_count()}


def routes(portal: Portal) -> dict[tuple[str, str], Route]:
    """The application routes, merged into the control API's table."""
    return {
        ("POST", "/_emu/app/install"): lambda q, b: _install(portal, b),
        ("POST", "/_emu/app/uninstall"): lambda q, b: _uninstall(portal, b),
        ("GET", "/_emu/app"): lambda q, b: _info(portal, q.get("client_id")),
        ("POST", "/_emu/app/expire_tokens"): lambda q, b: (200, {"expired": portal.expire_tokens(b.get("client_id"))}),
        ("POST", "/_emu/app/run_robot"): lambda q, b: (200, portal.run_robot(
            str(b["code"]), int(b["deal_id"]), b.get("properties"), timeout_duration=int(b.get("timeout_duration", 0)),
            client_id=b.get("client_id")).as_dict()),
        ("GET", "/_emu/app/robots"): lambda q, b: (200, portal.robots(q.get("client_id"))),
        ("GET", "/_emu/app/bindings"): lambda q, b: (200, portal.bindings()),
        ("GET", "/_emu/app/offline"): lambda q, b: (200, portal.offline_queue()),
        ("GET", "/_emu/app/robot_runs"): lambda q, b: (200, portal.robot_runs()),
        ("GET", "/_emu/app/robot_answers"): lambda q, b: (200, portal.robot_answers()),
        ("GET", "/_emu/app/oauth_requests"): lambda q, b: (200, portal.oauth_requests()),
    }
