"""Flask app factory: the handler URL (parse -> persist -> answer), health and status.

``POST /b24/<source_id>`` is the one URL an integrator pastes into Bitrix24 (outgoing webhook,
"Webhook" robot with ``?key=``, application robot).  It answers as soon as the call is stored;
Bitrix24 never re-sends a call (``api-reference/events/index.md``), so storing comes first.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from relay import __version__, metrics
from relay.config import OneCBase, RelayConfig, SourceConfig
from relay.errors import BadRequest, Forbidden, IngressError, PayloadTooLarge, Unauthorized, UnknownSource
from relay.intake import app as app_intake
from relay.intake import onec
from relay.intake.bitrix24 import BodyLimits, SourceAuth, check_key, decode_body, decode_pairs, interpret
from relay.redact import REDACTOR, redact_url
from relay.store import Store
from relay.vault import Vault
from relay.web import cockpit
from relay.web.admin import blueprint

log = logging.getLogger("relay.web")
ONEC_PATH = "/api/webhook/1c/"


def _hosts(src: SourceConfig) -> tuple[str, ...]:
    """Hosts an ``auth[client_endpoint]`` of this source may name: its domain and its portal_url's host."""
    return tuple(h for h in (src.domain, urlsplit(src.portal_url).hostname if src.portal_url else None) if h)


def _vault(config: RelayConfig) -> Vault:
    if config.file.token_key is None:
        raise Forbidden("this relay has no token_key: application sources are not set up")
    return Vault(config.file.token_key.get_secret_value())


def _installed_token(config: RelayConfig, store: Store, src: SourceConfig) -> str:
    """The application token an installed application source's calls must carry."""
    row = store.portal(src.id)
    if row is None:
        raise Forbidden(f"the relay's application is not installed on {src.domain} (or was uninstalled): "
                        "install it there first")
    return _vault(config).open(row.application_token)


def _auth(config: RelayConfig, source_id: str, store: Store | None = None) -> SourceAuth:
    src = config.source(source_id)
    if src is None:
        raise UnknownSource(f"unknown source {source_id[:64]!r}")
    token = src.application_token.get_secret_value() if src.application_token else None
    if src.mode == "app" and store is not None:
        token = _installed_token(config, store, src)
    return SourceAuth(
        application_token=token,
        robot_key=src.robot_key.get_secret_value() if src.robot_key else None,
        member_id=src.member_id,
        domain=src.domain,
        deletes=config.mappings[src.id].deletes.source != "ignore",
        endpoint_hosts=_hosts(src),
    )


def _onec_base(config: RelayConfig) -> OneCBase:
    """The 1C base a call comes from: by its token (``Authorization: Bearer``, ``X-Relay-Token`` or
    ``?key=``, compared in constant time), else by the caller's address (``allow_ips``)."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    token = token or request.headers.get("X-Relay-Token", "").strip() or request.args.get("key", "").strip()
    if token:
        given = token.encode("utf-8", "replace")
        for base in config.file.onec:
            if base.token is not None and hmac.compare_digest(given, base.token.get_secret_value().encode()):
                return base
        raise Forbidden("wrong token: check the token in the 1C module against onec[].token in relay.yaml")
    address = request.remote_addr or ""
    for base in config.file.onec:
        if base.allows(address):
            return base
    raise Unauthorized("no token: send the base's token as the header Authorization: Bearer <token> "
                       "(or X-Relay-Token, or ?key=<token>)")


def _payload(limits: BodyLimits, max_body_bytes: int) -> dict[str, Any]:
    """Read and decode the body (RequestEntityTooLarge when it is over ``max_body_bytes``)."""
    if (request.mimetype or "") == "multipart/form-data":  # curl -F; Bitrix24 never sends it
        request.max_form_parts = limits.max_fields
        request.max_form_memory_size = max_body_bytes
        try:
            fields = list(request.form.items(multi=True))
        except RequestEntityTooLarge:
            if (request.content_length or 0) > max_body_bytes:
                raise
            raise BadRequest(f"too many fields: more than {limits.max_fields} (ingress.max_fields)") from None
        return decode_pairs(fields, limits)
    return decode_body(request.get_data(cache=False), request.content_type or "", limits)


def _drain(max_body_bytes: int) -> None:
    """Read and drop what is left of a refused body (one refused before reading: 404, 403).

    Deciding needs no body, but leaving it unread costs more than reading it: gunicorn then closes
    the connection gracefully, lingering up to 2 s on its event loop while every other connection
    of the worker waits.  Bodies over ``max_body_bytes`` (413) are not read.
    """
    length = request.content_length
    if length is None or length > max_body_bytes:
        return
    try:
        while request.stream.read(64 * 1024):
            pass
    except (OSError, ValueError, HTTPException):  # the client went away or sent less: nothing to keep
        pass


def create_app(config: RelayConfig, store: Store, *, on_enqueue: Callable[[], None] | None = None,
               admin_token: str | None = None) -> Flask:
    """Build the web app around a loaded configuration and store (admin API when a token is given)."""
    app = Flask("relay")
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # error texts name Cyrillic 1C keys: keep them readable
    app.register_blueprint(blueprint(store, admin_token))
    cockpit.install(app, config, store, admin_token)
    if admin_token:
        REDACTOR.add([admin_token])
    app.config["MAX_CONTENT_LENGTH"] = config.file.ingress.max_body_bytes
    REDACTOR.add(config.secrets())

    def error(status: int, message: str) -> tuple[Response, int]:
        return jsonify({"ok": False, "error": message}), status

    @app.errorhandler(IngressError)
    def _ingress_error(exc: IngressError) -> tuple[Response, int]:
        log.warning("%s %s -> %d: %s", request.method, redact_url(request.path), exc.status, exc.message)
        _drain(config.file.ingress.max_body_bytes)
        response, status = error(exc.status, exc.message)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="b24relay"'
        return response, status

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc: HTTPException) -> tuple[Response, int]:
        if request.path.startswith(ONEC_PATH):
            limit, key = config.file.ingress.onec_max_body_bytes, "ingress.onec_max_body_bytes"
        else:
            limit, key = config.file.ingress.max_body_bytes, "ingress.max_body_bytes"
        return _ingress_error(PayloadTooLarge(f"body larger than {limit} bytes ({key})"))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        return error(exc.code or 500, exc.description or exc.name)

    def _app_source(source_id: str) -> SourceConfig:
        src = config.source(source_id)
        if src is None:
            raise UnknownSource(f"unknown source {source_id[:64]!r}")
        if src.mode != "app":
            raise UnknownSource(f"source {source_id[:64]!r} is not an application source (mode: app)")
        return src

    def _install(src: SourceConfig, payload: dict[str, Any]) -> tuple[Response, int]:
        got = app_intake.install(payload, request.args, domain=src.domain or "", member_id=src.member_id,
                                 endpoint_hosts=_hosts(src))
        vault = _vault(config)
        row = store.portal(src.id)
        if row is not None and not hmac.compare_digest(vault.open(row.application_token).encode(),
                                                       got.application_token.encode()):
            raise Forbidden(f"the application is installed on {src.domain} already with another application "
                            f"token: uninstall it there first (or `relay app forget {src.id}`)")
        store.save_install(src.id, member_id=got.member_id, domain=got.domain,
                           access_token=vault.seal(got.access_token), refresh_token=vault.seal(got.refresh_token),
                           application_token=vault.seal(got.application_token),
                           expires_at=time.time() + got.expires_in)
        if on_enqueue is not None:
            on_enqueue()  # a worker registers the robot and binds the events next
        log.info("source %s: application installed on %s (member %s)", src.id, got.domain, got.member_id[:8] + "…")
        return jsonify({"ok": True, "installed": src.id}), 200

    def _uninstall(src: SourceConfig, payload: dict[str, Any]) -> tuple[Response, int]:
        token = app_intake.uninstall_token(payload)
        if not hmac.compare_digest(_installed_token(config, store, src).encode(), token.encode()):
            raise Forbidden("ONAPPUNINSTALL with a wrong application_token")
        store.forget_portal(src.id)
        log.warning("source %s: application uninstalled from %s; its tokens are deleted", src.id, src.domain)
        return jsonify({"ok": True, "uninstalled": src.id}), 200

    @app.post("/b24/<source_id>/install")
    def install_handler(source_id: str) -> tuple[Response, int]:
        src = _app_source(source_id)
        ingress = config.file.ingress
        return _install(src, _payload(BodyLimits(ingress.max_fields, ingress.max_depth), ingress.max_body_bytes))

    @app.post("/b24/<source_id>")
    def handler(source_id: str) -> tuple[Response, int]:
        started = time.perf_counter()
        src = config.source(source_id)
        ingress = config.file.ingress
        if src is not None and src.mode == "app":  # install and uninstall come to the handler URL too
            payload = _payload(BodyLimits(ingress.max_fields, ingress.max_depth), ingress.max_body_bytes)
            event = str(payload.get("event") or "").strip().upper()
            if event == app_intake.INSTALL:
                return _install(src, payload)
            if event == app_intake.UNINSTALL:
                return _uninstall(src, payload)
            auth = _auth(config, source_id, store)
            key = request.args.get("key")
            check_key(key, auth)
        else:
            # cheap checks first, before the body is read: an unknown source is 404, a wrong ?key= 403
            auth = _auth(config, source_id)
            key = request.args.get("key")
            check_key(key, auth)
            # a body over MAX_CONTENT_LENGTH raises RequestEntityTooLarge here -> 413 (_too_large); then the
            # fields are counted before parsing (400), and parsing is linear and bounded (ingress.*)
            payload = _payload(BodyLimits(ingress.max_fields, ingress.max_depth), ingress.max_body_bytes)
        call = interpret(payload, key, auth)
        if src is not None and src.mode == "app" and call.trigger == "ONOFFLINEEVENT":
            store.request_sweep(f"offline:{source_id}")  # the portal's nudge: offline events wait
            if on_enqueue is not None:
                on_enqueue()
            return jsonify({"ok": True, "ignored": "offline events are read next"}), 200
        if call.kind == "ignored" or call.deal_id is None:
            log.info("source %s: %s ignored: %s", source_id, call.trigger, call.note)
            return jsonify({"ok": True, "ignored": call.note}), 200
        queued = store.enqueue_sync(source_id, call.deal_id, call.trigger, event_token=call.event_token,
                                    robot=call.properties or None)
        if on_enqueue is not None:
            on_enqueue()
        log.info("source %s: %s deal %s -> job %s%s (%.1f ms)", source_id, call.trigger, call.deal_id,
                 queued.job_id, " (merged)" if queued.merged else "", (time.perf_counter() - started) * 1000)
        return jsonify({"ok": True, "job_id": queued.job_id, "merged": queued.merged, "deal_id": call.deal_id}), 200

    @app.post(ONEC_PATH + "<path:kind>")
    def onec_handler(kind: str) -> tuple[Response, int]:
        started = time.perf_counter()
        ingress = config.file.ingress
        request.max_content_length = ingress.onec_max_body_bytes  # invoices are bigger than events
        record_kind = onec.KINDS.get(kind)
        if record_kind is None:
            raise UnknownSource(f"unknown 1C path {kind[:40]!r}: use clients, invoices or outgoing-invoices")
        base = _onec_base(config)
        call = onec.decode(record_kind, request.get_data(cache=False),
                           limits=BodyLimits(ingress.onec_max_fields, ingress.max_depth), timezone=base.timezone)
        spec = config.onec_mappings[base.id]
        section = {"client": spec.clients, "incoming": spec.incoming, "outgoing": spec.outgoing}[record_kind]
        if section is None:
            note = f"the mapping of 1C base {base.id} has no {onec.SECTION[record_kind]} section"
            log.info("1C base %s: %s %s ignored: %s", base.id, call.action, call.key, note)
            return jsonify({"ok": True, "ignored": note}), 200
        queued = store.enqueue_record(base.id, call.key, call.payload)
        if on_enqueue is not None:
            on_enqueue()
        log.info("1C base %s: %s %s -> job %s%s (%.1f ms)", base.id, call.action, call.key, queued.job_id,
                 " (merged)" if queued.merged else "", (time.perf_counter() - started) * 1000)
        return jsonify({"ok": True, "job_id": queued.job_id, "merged": queued.merged, "key": call.key}), 200

    jobs_collector = metrics.JobsCollector(store.counts, store.oldest_pending)

    @app.after_request
    def _count(response: Response) -> Response:
        path = request.path
        if path.startswith("/b24/") or path.startswith(ONEC_PATH):
            kind = "1c" if path.startswith(ONEC_PATH) else "b24"
            source = (request.view_args or {}).get("source_id") or (request.view_args or {}).get("kind") or "?"
            metrics.CALLS.labels(str(source)[:64] if kind == "b24" else f"1c:{str(source)[:40]}", kind,
                                 str(response.status_code)).inc()
        return response

    @app.get("/metrics")
    def metrics_page() -> Response:
        body, ctype = metrics.exposition(jobs_collector)
        return Response(body, content_type=ctype)

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        # 200 only when the store can write and commit durably (relay/store/health.py: a real committed
        # write, answered within 3 s, a success reused for 1 s); 503 with a short reason otherwise
        try:
            reason = store.check_writable()
        except Exception as exc:  # report, never crash the probe
            reason = f"check failed: {type(exc).__name__}"
        if reason is not None:
            return jsonify({"status": "error", "database": REDACTOR(reason)}), 503
        return jsonify({"status": "ok", "version": __version__}), 200

    @app.get("/status")
    def status() -> tuple[Response, int]:
        sources = [{"id": s.id, "events": s.application_token is not None, "robot": s.robot_key is not None,
                    "mapping": s.mapping.name} for s in config.file.sources]
        bases = [{"id": b.id, "mapping": b.mapping.name, "token": b.token is not None, "allow_ips": len(b.allow_ips)}
                 for b in config.file.onec]
        return jsonify({"version": __version__, "sources": sources, "onec": bases, "jobs": store.counts()}), 200

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
