"""Flask app factory: the handler URL (parse -> persist -> answer), health and status.

``POST /b24/<source_id>`` is the one URL an integrator pastes into Bitrix24 (outgoing webhook,
"Webhook" robot with ``?key=``, application robot).  It answers as soon as the call is stored;
Bitrix24 never re-sends a call (``api-reference/events/index.md``), so storing comes first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from relay import __version__
from relay.admin import blueprint
from relay.config import RelayConfig
from relay.errors import BadRequest, IngressError, PayloadTooLarge, UnknownSource
from relay.inbound import SourceAuth, decode_body, interpret
from relay.phpquery import nest_pairs
from relay.redact import REDACTOR, redact_url
from relay.store import Store

log = logging.getLogger("relay.web")


def _auth(config: RelayConfig, source_id: str) -> SourceAuth:
    src = config.source(source_id)
    if src is None:
        raise UnknownSource(f"unknown source {source_id[:64]!r}")
    return SourceAuth(
        application_token=src.application_token.get_secret_value() if src.application_token else None,
        robot_key=src.robot_key.get_secret_value() if src.robot_key else None,
        member_id=src.member_id,
        domain=src.domain,
    )


def _payload() -> dict[str, Any]:
    if (request.mimetype or "") == "multipart/form-data":
        return nest_pairs(request.form.items(multi=True))
    return decode_body(request.get_data(cache=False), request.content_type or "")


def create_app(config: RelayConfig, store: Store, *, on_enqueue: Callable[[], None] | None = None,
               admin_token: str | None = None) -> Flask:
    """Build the web app around a loaded configuration and store (admin API when a token is given)."""
    app = Flask("relay")
    app.register_blueprint(blueprint(store, admin_token))
    if admin_token:
        REDACTOR.add([admin_token])
    app.config["MAX_CONTENT_LENGTH"] = config.file.ingress.max_body_bytes
    REDACTOR.add(config.secrets())

    def error(status: int, message: str) -> tuple[Response, int]:
        return jsonify({"ok": False, "error": message}), status

    @app.errorhandler(IngressError)
    def _ingress_error(exc: IngressError) -> tuple[Response, int]:
        log.warning("%s %s -> %d: %s", request.method, redact_url(request.path), exc.status, exc.message)
        return error(exc.status, exc.message)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc: HTTPException) -> tuple[Response, int]:
        limit = config.file.ingress.max_body_bytes
        return _ingress_error(PayloadTooLarge(f"body larger than {limit} bytes (ingress.max_body_bytes)"))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        return error(exc.code or 500, exc.description or exc.name)

    @app.post("/b24/<source_id>")
    def handler(source_id: str) -> tuple[Response, int]:
        started = time.perf_counter()
        auth = _auth(config, source_id)  # before the body: an unknown source is 404 whatever it sent
        try:  # a body over MAX_CONTENT_LENGTH raises RequestEntityTooLarge here -> 413 (_too_large)
            payload = _payload()
        except UnicodeDecodeError:
            raise BadRequest("body is not UTF-8") from None
        call = interpret(payload, request.args.get("key"), auth)
        if call.kind == "ignored" or call.deal_id is None:
            log.info("source %s: %s ignored: %s", source_id, call.trigger, call.note)
            return jsonify({"ok": True, "ignored": call.note}), 200
        queued = store.enqueue_sync(source_id, call.deal_id, call.trigger, event_token=call.event_token)
        if on_enqueue is not None:
            on_enqueue()
        log.info("source %s: %s deal %s -> job %s%s (%.1f ms)", source_id, call.trigger, call.deal_id,
                 queued.job_id, " (merged)" if queued.merged else "", (time.perf_counter() - started) * 1000)
        return jsonify({"ok": True, "job_id": queued.job_id, "merged": queued.merged, "deal_id": call.deal_id}), 200

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        try:
            store.ping()
        except Exception as exc:  # report, never crash the probe
            return jsonify({"status": "error", "database": REDACTOR(type(exc).__name__)}), 503
        return jsonify({"status": "ok", "version": __version__}), 200

    @app.get("/status")
    def status() -> tuple[Response, int]:
        sources = [{"id": s.id, "events": s.application_token is not None, "robot": s.robot_key is not None,
                    "mapping": s.mapping.name} for s in config.file.sources]
        return jsonify({"version": __version__, "sources": sources, "jobs": store.counts()}), 200

    return app


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's request handler without its access log (which would print ``?key=`` values)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def serve_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0) -> BaseWSGIServer:
    """Serve ``app`` on a real HTTP port from a daemon thread (demo and tests); call ``shutdown()``."""
    server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="relay-http", daemon=True).start()
    return server
