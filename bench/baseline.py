"""THE BASELINE — the naive ``handler.php`` plan, for benchmarks only (never use it in production).

This module reproduces, in Python, what the user's original PHP plan does per event
(``/work/shared/seeds/004_3d05cce28d3b3c16.txt``: ``handler.php`` + ``syncProductRows`` +
``notifyTransferStatus``): the event handler itself does the whole transfer, synchronously,
with **six sequential REST calls per event** and nothing else:

1. ``crm.deal.get`` on the source,
2. ``crm.deal.add`` on the target (a plain field copy),
3. ``crm.deal.productrows.get`` on the source,
4. ``crm.deal.productrows.set`` on the target (free-text rows),
5. ``im.notify.system.add`` on the source (to the deal's responsible user),
6. ``crm.timeline.comment.add`` on the source.

There is **no queue, no retry, no batch, no pacing** and no de-duplication.  The first failure
(HTTP error, Bitrix24 error JSON such as 503 ``QUERY_LIMIT_EXCEEDED``, network error) ends the
event with HTTP 500, as the seed does.  Bitrix24 never re-sends an event, so that deal is then
lost (failed before step 2) or half-done (failed after it).

Compared with the seed we only fix what a benchmark needs to be fair and safe: the event's
``auth[application_token]`` is checked and the source portal is the configured webhook, never
``auth[domain]``.

What it is for: :func:`run_baseline` relays a list of deals between two emulated portals
(:mod:`relay.emulator`) over real HTTP and reports wall time, outcomes and the requests each
portal received, so the real relay (queue + worker + pacing + batching) can be compared with
this straightforward design under the same portal rate limits.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from flask import Flask, Response, jsonify, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from relay.emulator import EmulatedPortal
from relay.phpquery import parse_query

__all__ = ["BaselineError", "BaselineStats", "create_baseline_app", "run_baseline"]

#: the events handler.php reacts to
EVENTS = frozenset({"ONCRMDEALUPDATE", "ONCRMDEALADD"})
#: fixed target placement of the naive field copy (the default emulated ESB portal accepts these)
TARGET_CATEGORY_ID = 3
TARGET_STAGE_ID = "C3:NEW"
TARGET_ASSIGNED_BY_ID = 17


class BaselineError(Exception):
    """One failed REST call: ``kind`` is the Bitrix24 error code, ``HTTP_<status>`` or the network error."""

    def __init__(self, method: str, kind: str, description: str = "") -> None:
        self.method, self.kind, self.description = method, kind, description
        text = f"{method}: {kind}" + (f" ({description})" if description else "")
        super().__init__(text)


class BaselineStats:
    """Thread-safe outcome counters of the baseline handler (``app.config["BASELINE_STATS"]``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ok = 0
        self.failed = 0
        self.rejected = 0  # bad token / unsupported event: nothing was attempted
        self.failures: Counter[str] = Counter()  # by failure kind, e.g. QUERY_LIMIT_EXCEEDED
        self.failed_at: Counter[str] = Counter()  # by the REST method that failed

    def record_ok(self) -> None:
        with self._lock:
            self.ok += 1

    def record_failure(self, kind: str, method: str) -> None:
        with self._lock:
            self.failed += 1
            self.failures[kind] += 1
            self.failed_at[method] += 1

    def record_rejected(self) -> None:
        with self._lock:
            self.rejected += 1

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy as plain data."""
        with self._lock:
            return {"ok": self.ok, "failed": self.failed, "rejected": self.rejected,
                    "failures": dict(self.failures), "failed_at": dict(self.failed_at)}


def _call(session: requests.Session, webhook: str, method: str, params: dict[str, Any],
          timeout: float) -> Any:
    """One REST call, exactly once: POST JSON to ``<webhook><method>.json``; returns ``result``.

    Error texts never contain the URL (it holds the webhook secret).
    """
    try:
        reply = session.post(f"{webhook}{method}.json", json=params, timeout=timeout, allow_redirects=False)
    except requests.Timeout as exc:
        raise BaselineError(method, "TIMEOUT", type(exc).__name__) from None
    except requests.RequestException as exc:
        raise BaselineError(method, "NETWORK_ERROR", type(exc).__name__) from None
    try:
        body = reply.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        raise BaselineError(method, str(body["error"]), str(body.get("error_description") or ""))
    if reply.status_code >= 400:
        raise BaselineError(method, f"HTTP_{reply.status_code}")
    if not isinstance(body, dict) or "result" not in body:
        raise BaselineError(method, "INVALID_RESPONSE", f"HTTP {reply.status_code}")
    return body["result"]


def _transfer(session: requests.Session, source: str, target: str, member_id: str, deal_id: int,
              timeout: float) -> int:
    """The six sequential calls of the naive plan; returns the new target deal id."""
    deal = _call(session, source, "crm.deal.get", {"id": deal_id}, timeout)
    if not isinstance(deal, dict):
        raise BaselineError("crm.deal.get", "INVALID_RESPONSE", "result is not a deal")
    fields = {
        "TITLE": deal.get("TITLE"),
        "OPPORTUNITY": deal.get("OPPORTUNITY"),
        "CURRENCY_ID": deal.get("CURRENCY_ID"),
        "CATEGORY_ID": TARGET_CATEGORY_ID,
        "STAGE_ID": TARGET_STAGE_ID,
        "ASSIGNED_BY_ID": TARGET_ASSIGNED_BY_ID,
        "UF_CRM_SOURCE_DEAL": f"{member_id}:{deal_id}",
    }
    esb_id = _call(session, target, "crm.deal.add", {"fields": fields}, timeout)
    rows = _call(session, source, "crm.deal.productrows.get", {"id": deal_id}, timeout) or []
    target_rows = [{"PRODUCT_ID": 0, "PRODUCT_NAME": r.get("PRODUCT_NAME"), "PRICE": r.get("PRICE"),
                    "QUANTITY": r.get("QUANTITY")} for r in rows if isinstance(r, dict)]
    _call(session, target, "crm.deal.productrows.set", {"id": esb_id, "rows": target_rows}, timeout)
    message = f"Deal #{deal_id} was transferred to ESB as deal #{esb_id}"
    _call(session, source, "im.notify.system.add",
          {"USER_ID": deal.get("ASSIGNED_BY_ID"), "MESSAGE": message}, timeout)
    _call(session, source, "crm.timeline.comment.add",
          {"fields": {"ENTITY_ID": deal_id, "ENTITY_TYPE": "deal", "COMMENT": message}}, timeout)
    return int(esb_id)


def _event_payload() -> dict[str, Any]:
    """The event as nested data: Bitrix24 posts a PHP-bracket form; a JSON replay is accepted too."""
    if request.is_json:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}
    return parse_query(request.get_data(as_text=True))


def create_baseline_app(source_webhook: str, target_webhook: str, application_token: str, *,
                        call_timeout: float = 10.0) -> Flask:
    """The naive synchronous handler as a Flask app with one route, ``POST /handler``."""
    source = source_webhook if source_webhook.endswith("/") else source_webhook + "/"
    target = target_webhook if target_webhook.endswith("/") else target_webhook + "/"
    stats = BaselineStats()
    app = Flask("bench.baseline")
    app.config["BASELINE_STATS"] = stats

    @app.post("/handler")
    def handler() -> tuple[Response, int]:
        payload = _event_payload()
        auth = payload.get("auth") if isinstance(payload.get("auth"), dict) else {}
        token = str(auth.get("application_token") or "")
        if not hmac.compare_digest(token.encode(), application_token.encode()):
            stats.record_rejected()
            return jsonify({"error": "Invalid application token"}), 401
        event = str(payload.get("event") or "").upper()
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        fields = data.get("FIELDS") if isinstance(data.get("FIELDS"), dict) else {}
        raw_id = str(fields.get("ID") or "")
        if event not in EVENTS or not raw_id.isdigit() or int(raw_id) <= 0:
            stats.record_rejected()
            return jsonify({"error": "Unsupported event or deal ID is required"}), 400
        deal_id = int(raw_id)
        member_id = str(auth.get("member_id") or "")
        try:
            with requests.Session() as session:  # closed per event: no sockets left behind
                esb_id = _transfer(session, source, target, member_id, deal_id, call_timeout)
        except BaselineError as exc:  # the seed's catch: 500 with the message, no retry
            stats.record_failure(exc.kind, exc.method)
            return jsonify({"error": str(exc), "kind": exc.kind, "method": exc.method}), 500
        stats.record_ok()
        return jsonify({"success": True, "esb_deal_id": esb_id}), 200

    return app


class _QuietHandler(WSGIRequestHandler):
    """No access log; one request per connection so no handler thread idles on keep-alive."""

    protocol_version = "HTTP/1.0"
    timeout = 30  # socket timeout: a silent client cannot pin a handler thread

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def _start_server(app: Flask) -> tuple[BaseWSGIServer, threading.Thread]:
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    server.daemon_threads = False  # so server_close() joins every request thread
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="baseline-http", daemon=True)
    thread.start()
    return server, thread


def _stop_server(server: BaseWSGIServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()  # closes the socket and joins the request threads
    thread.join(5.0)


def run_baseline(source: EmulatedPortal, target: EmulatedPortal, deal_ids: list[int], *,
                 concurrency: int = 4, timeout: float = 60.0,
                 application_token: str | None = None) -> dict[str, Any]:
    """Relay ``deal_ids`` from ``source`` to ``target`` (both started) through the baseline handler.

    One ``ONCRMDEALUPDATE`` per deal is posted by ``concurrency`` sender threads (the portal's
    queue server).  ``timeout`` bounds the whole run: each sender waits at most until the common
    deadline, and every outbound call of the handler is bounded too.  Request counts are the
    difference of each portal's request log across the run (rate-limit rejections included).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if timeout <= 0:
        raise ValueError("timeout must be > 0")
    token = application_token or source.config.application_token
    app = create_baseline_app(source.webhook_url, target.webhook_url, token,
                              call_timeout=min(10.0, timeout))
    stats: BaselineStats = app.config["BASELINE_STATS"]
    statuses: Counter[str] = Counter()
    statuses_lock = threading.Lock()
    source_before, target_before = source.count_requests(), target.count_requests()
    server, thread = _start_server(app)
    handler_url = f"http://127.0.0.1:{server.server_port}/handler"

    def send(deal_id: int) -> None:
        remaining = deadline - time.monotonic()
        status = "unanswered"
        if remaining > 0:
            try:
                code, _ = source.send_event(handler_url, "ONCRMDEALUPDATE", deal_id, token,
                                            timeout=remaining)
                status = str(code)
            except requests.RequestException:
                status = "unanswered"
        with statuses_lock:
            statuses[status] += 1

    try:
        started = time.monotonic()
        deadline = started + timeout
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="baseline-sender") as pool:
            for future in [pool.submit(send, int(d)) for d in deal_ids]:
                future.result()
        wall = time.monotonic() - started
    finally:
        _stop_server(server, thread)
    snap = stats.snapshot()
    return {
        "wall_seconds": wall,
        "events": len(deal_ids),
        "ok": snap["ok"],
        "failed": snap["failed"],
        "failures": snap["failures"],
        "failed_at": snap["failed_at"],
        "rejected": snap["rejected"],
        "answers": dict(statuses),
        "unanswered": statuses.get("unanswered", 0),
        "source_requests": source.count_requests() - source_before,
        "target_requests": target.count_requests() - target_before,
        "handler_url": handler_url,
    }

