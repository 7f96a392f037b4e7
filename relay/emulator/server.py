"""Serve a portal over real HTTP on 127.0.0.1, speaking the inbound-webhook REST protocol.

URL scheme ``/rest/<USER_ID>/<SECRET>/<method>[.json]``, GET with a query string or POST with a
JSON or PHP-bracket form body — ``local-integrations/local-webhooks.md``,
``settings/how-to-call-rest-api/general-principles.md``, ``settings/how-to-call-rest-api/data-encoding.md``.
Wrong user/secret -> 401 ``NO_AUTH_FOUND`` — ``_includes/system-errors.md``.  ``/_emu/`` is the
control API of :mod:`relay.emulator.control`.  Installed applications call ``/rest/<method>`` with
``auth=<access_token>`` (query, form or JSON body) — ``settings/how-to-call-rest-api/authorization.md`` —
and refresh tokens at ``/oauth/token/``, the emulated ``oauth.bitrix.info`` (:mod:`relay.emulator.app`).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from relay.emulator.config import PortalConfig
from relay.emulator.control import handle_control
from relay.emulator.core import EmuError
from relay.emulator.files import GET_FILE
from relay.emulator.pipeline import normalize_method
from relay.emulator.portal import Portal
from relay.phpquery import parse_query

log = logging.getLogger("relay.emulator")
_REST = re.compile(r"^/rest/(?P<user>[^/]+)/(?P<secret>[^/]+)/(?P<method>[^/]*)/?$")
_APP_REST = re.compile(r"^/rest/(?P<method>[^/]+)/?$")
JSON_TYPE = "application/json; charset=utf-8"


class _Server(ThreadingHTTPServer):
    """Threaded server whose daemon request threads are still joined by ``server_close``."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # parallel benchmark clients must not hit a full listen backlog
    portal: EmulatedPortal

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self._workers: list[threading.Thread] = []
        self._workers_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve each connection in a daemon thread that :meth:`server_close` waits for."""
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                                  name="emu-request", daemon=True)
        with self._workers_lock:
            self._workers = [t for t in self._workers if t.is_alive()]
            self._workers.append(thread)
        thread.start()

    def server_close(self) -> None:
        """Close the socket, then wait (bounded) for in-flight requests to finish."""
        super().server_close()
        with self._workers_lock:
            workers, self._workers = self._workers, []
        for thread in workers:
            thread.join(_Handler.timeout + 1)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: clients that hang up early are normal here."""
        log.debug("request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: stop() never waits on idle keep-alives
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        """No per-request stderr lines (and never the secret in the path)."""

    def do_GET(self) -> None:
        """GET: REST with a query string, or a control read."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """POST: REST with a JSON or form body, or a control action."""
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        """PATCH: control API only."""
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        """DELETE: control API only."""
        self._dispatch("DELETE")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _hang_up(self) -> None:
        """Close the TCP connection without writing a single byte."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _dispatch(self, verb: str) -> None:
        try:
            self._route(verb)
        except (BrokenPipeError, ConnectionResetError):  # the client hung up (e.g. a killed worker)
            log.debug("client hung up during %s", verb)
        except Exception:  # answer 500 instead of silently hanging up
            log.exception("emulator failed on %s", verb)
            self._send_json(500, {"error": "INTERNAL_SERVER_ERROR", "error_description": "Emulator failure"})

    def _route(self, verb: str) -> None:
        parts = urlsplit(self.path)
        body = self._body()
        if parts.path == "/_emu" or parts.path.startswith("/_emu/"):
            self._control(verb, parts.path, parts.query, body)
            return
        if parts.path.rstrip("/") == "/oauth/token" or _APP_REST.match(parts.path):
            self._app_route(verb, parts.path, parts.query, body)
            return
        match = _REST.match(parts.path)
        if match is None:
            self._send_json(404, {"error": "NOT_FOUND", "error_description": "Use /rest/<user>/<secret>/<method>"})
            return
        if verb not in ("GET", "POST"):
            self._send_json(405, {"error": "METHOD_NOT_ALLOWED", "error_description": verb})
            return
        portal = self.server.portal
        params, error = self._decode(parts.query, body)
        authorized = unquote(match["user"]) == str(portal.config.user_id) and hmac.compare_digest(
            unquote(match["secret"]).encode(), portal.config.secret.encode())
        if normalize_method(unquote(match["method"])) == GET_FILE.lower():
            self._send_file(portal, params, authorized)
            return
        outcome = portal.handle(unquote(match["method"]), params, authorized=authorized, error=error)
        if outcome.body is None:
            self._hang_up()
        else:
            self._send_json(outcome.status, outcome.body)

    def _app_route(self, verb: str, path: str, query: str, body: bytes) -> None:
        """The OAuth server, or a REST call authorised by an application's access token."""
        if verb not in ("GET", "POST"):
            self._send_json(405, {"error": "METHOD_NOT_ALLOWED", "error_description": verb})
            return
        portal = self.server.portal
        params, error = self._decode(query, body)
        if path.rstrip("/") == "/oauth/token":
            self._send_json(*portal.oauth_token({str(k): v for k, v in params.items() if isinstance(v, str)}))
            return
        token, connector = params.pop("auth", None), params.pop("auth_connector", None)
        match = _APP_REST.match(path)
        assert match is not None
        outcome = portal.handle_app(unquote(match["method"]), params, token if isinstance(token, str) else None,
                                    connector if isinstance(connector, str) else "", error=error)
        if outcome.body is None:
            self._hang_up()
        else:
            self._send_json(outcome.status, outcome.body)

    def _send_file(self, portal: Portal, params: dict[str, Any], authorized: bool) -> None:
        """``urlMachine`` download (:mod:`relay.emulator.files`): raw bytes, only with the webhook's secret."""
        if not authorized:
            self._send_json(401, {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"})
            return
        try:
            name, content = portal.download_file(params)
        except EmuError as exc:
            self._send_json(exc.status, exc.body())
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def _decode(self, query: str, body: bytes) -> tuple[dict[str, Any], EmuError | None]:
        """Query-string parameters, overlaid by the JSON or form body."""
        params: dict[str, Any] = parse_query(query) if query else {}
        if not body.strip():
            return params, None
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype.endswith("json") or (not ctype and body.lstrip()[:1] == b"{"):
            try:
                data = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return params, EmuError(400, "INVALID_REQUEST", "Request body is not valid JSON")
            if not isinstance(data, dict):
                return params, EmuError(400, "INVALID_REQUEST", "JSON body must be an object")
            params.update(data)
        elif ctype in ("application/x-www-form-urlencoded", ""):
            params.update(parse_query(body.decode("utf-8", "replace")))
        else:
            return params, EmuError(400, "INVALID_REQUEST", f"Unsupported Content-Type '{ctype}' in the emulator")
        return params, None

    def _control(self, verb: str, path: str, query: str, body: bytes) -> None:
        if self.client_address[0] not in ("127.0.0.1", "::1"):
            self._send_json(403, {"error": "ACCESS_DENIED", "error_description": "loopback only"})
            return
        try:
            payload = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (UnicodeDecodeError, ValueError):
            self._send_json(400, {"error": "BAD_REQUEST", "error_description": "body must be JSON"})
            return
        status, data = handle_control(self.server.portal, verb, path, dict(parse_qsl(query)), payload)
        self._send_json(status, data)


class EmulatedPortal(Portal):
    """A :class:`Portal` served on ``127.0.0.1`` by its own threaded HTTP server."""

    def __init__(self, config: PortalConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(config)
        self._host, self._port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> EmulatedPortal:
        """Bind the socket and serve in a background thread (idempotent)."""
        if self._server is not None:
            return self
        self.reopen()
        server = _Server((self._host, self._port))
        server.portal = self
        self._server = server
        self.state.base_url = f"http://{self._host}:{self.port}"  # urlMachine links point here
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"emu-{self.config.domain}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, abort slow replies and wait for every request thread to end."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self.close()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(5.0)
        self._server = self._thread = None

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None:
            raise RuntimeError("portal is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self._host}:{self.port}"

    @property
    def webhook_url(self) -> str:
        """The inbound webhook base: ``http://127.0.0.1:<port>/rest/<user_id>/<secret>/``."""
        return f"{self.url}/rest/{self.config.user_id}/{self.config.secret}/"

    @property
    def app_rest_url(self) -> str:
        """Where an installed application calls methods: ``http://127.0.0.1:<port>/rest/`` (+ ``auth=``)."""
        return f"{self.url}/rest/"

    @property
    def oauth_url(self) -> str:
        """The emulated OAuth server's base (``<oauth_url>oauth/token/``), like ``https://oauth.bitrix.info/``."""
        return f"{self.url}/"

    @property
    def control_url(self) -> str:
        """Base of the control API: ``http://127.0.0.1:<port>/_emu/``."""
        return f"{self.url}/_emu/"

    def method_url(self, method: str) -> str:
        """``webhook_url`` + ``method`` + ``.json``."""
        return f"{self.webhook_url}{method}.json"

    def __enter__(self) -> EmulatedPortal:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
