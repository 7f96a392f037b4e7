"""How one REST request travels through a portal: rate limit, auth, faults, execution, log.

Order: leaky bucket (503 ``QUERY_LIMIT_EXCEEDED``, the rejection is not counted) ->
webhook auth (401 ``NO_AUTH_FOUND``, still counted) -> injected faults -> method.  Every reply
carries a ``time`` block — ``limits.md``, ``_includes/system-errors.md``,
``api-reference/data-types.md#time``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from relay.emulator.batch import inner_methods
from relay.emulator.config import PortalConfig
from relay.emulator.core import EmuError, Reply
from relay.emulator.faults import Fault, FaultBook
from relay.emulator.limits import LeakyBucket, OperatingLedger, time_block
from relay.emulator.state import PortalState

log = logging.getLogger("relay.emulator")


@dataclass
class RequestRecord:
    """One REST request as the portal saw it (``status`` None: no reply was sent)."""

    method: str
    inner: tuple[str, ...]
    status: int | None
    time: float
    duration: float
    fault: str | None = None
    error: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the control API."""
        return asdict(self)


@dataclass
class Outcome:
    """What the HTTP layer must do: send ``status`` + ``body``, or (``body`` None) hang up."""

    status: int
    body: dict[str, Any] | None


def normalize_method(method: str) -> str:
    """Lower-case, without ``.json`` — ``settings/how-to-call-rest-api/general-principles.md``."""
    method = method.strip().strip("/").lower()
    return method[:-5] if method.endswith(".json") else method


class PipelineMixin:
    """Request handling for :class:`relay.emulator.portal.Portal` (needs its lock and state)."""

    config: PortalConfig
    state: PortalState
    _lock: threading.RLock
    _bucket: LeakyBucket
    _ledger: OperatingLedger
    _faults: FaultBook
    _log: list[RequestRecord]
    _interrupt: threading.Event

    if TYPE_CHECKING:  # provided by Portal / OutgoingMixin
        def invoke(self, method: str, params: dict[str, Any]) -> Reply: ...

        def _fire_changes(self, origin: str) -> None: ...

    # -- faults ---------------------------------------------------------------------------------

    def inject(self, kind: str, method: str | None = None, times: int = 1, **opts: Any) -> Fault:
        """Queue a fault; ``method=None`` matches any request (see :mod:`relay.emulator.faults`)."""
        with self._lock:
            return self._faults.add(Fault(kind, method, times, dict(opts)))

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    def faults(self) -> list[Fault]:
        """Pending faults, oldest first."""
        with self._lock:
            return self._faults.pending()

    # -- request log ----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the REST request log, oldest first."""
        with self._lock:
            return list(self._log)

    def count_requests(self, method: str | None = None, *, status: int | None = None) -> int:
        """HTTP requests received (``method=None``), or calls of ``method`` incl. batch commands."""
        with self._lock:
            records = [r for r in self._log if status is None or r.status == status]
        if method is None:
            return len(records)
        method = normalize_method(method)
        return sum((r.method == method) + r.inner.count(method) for r in records)

    def reset_log(self) -> None:
        """Forget logged requests and empty the rate-limit bucket."""
        with self._lock:
            self._log.clear()
            self._bucket.reset()

    # -- the pipeline ---------------------------------------------------------------------------

    def _finish(self, rec: RequestRecord, status: int | None, body: dict[str, Any] | None,
                start: float, error: str | None = None) -> Outcome:
        rec.status, rec.duration, rec.error = status, time.time() - start, error
        with self._lock:
            self._log.append(rec)
        return Outcome(status or 0, body)

    def _error(self, rec: RequestRecord, exc: EmuError, start: float,
               reset_at: int | None = None) -> Outcome:
        body = {**exc.body(), "time": self._time(rec.method, start, reset_at)}
        return self._finish(rec, exc.status, body, start, exc.code or exc.description)

    def _time(self, method: str, start: float, reset_at: int | None = None) -> dict[str, Any]:
        """The reply's ``time`` block with this method's operating figures — ``limits.md``."""
        with self._lock:
            operating = self._ledger.operating(method)
            reset = self._ledger.reset_at(method) if reset_at is None else reset_at
        return time_block(start, time.time(), self.state.tz, operating=operating, reset_at=reset)

    def _fault_outcome(self, rec: RequestRecord, fault: Fault, start: float) -> Outcome | None:
        """Apply a request fault; None means "go on and execute"."""
        rec.fault = fault.kind
        if fault.kind == "query_limit":
            with self._lock:
                self._bucket.refund()
            return self._error(rec, EmuError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"), start)
        if fault.kind == "operation_time_limit":
            reset_at = math.ceil(time.time() + float(fault.opts.get("reset_in", 2)))
            exc = EmuError(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")
            return self._error(rec, exc, start, reset_at=reset_at)
        if fault.kind == "server_error":
            exc = EmuError(int(fault.opts.get("status", 500)), str(fault.opts.get("code", "INTERNAL_SERVER_ERROR")),
                           str(fault.opts.get("description", "Internal server error")))
            return self._error(rec, exc, start)
        if fault.kind == "drop":
            return self._finish(rec, None, None, start)
        if fault.kind == "timeout" and self._interrupt.wait(float(fault.opts.get("delay", 30.0))):
            return self._finish(rec, None, None, start, "portal stopped")
        return None

    def handle(self, method: str, params: dict[str, Any], *, authorized: bool = True,
               error: EmuError | None = None) -> Outcome:
        """Process one REST request end to end and log it."""
        start = time.time()
        method = normalize_method(method)
        inner = tuple(inner_methods(params)) if method == "batch" else ()
        rec = RequestRecord(method, inner, None, start, 0.0, params=params)
        with self._lock:
            if self.config.enforce_rate and not self._bucket.try_acquire():
                return self._error(rec, EmuError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"), start)
            if not authorized:  # counted against the limit — limits.md counts every request
                return self._error(rec, EmuError(401, "NO_AUTH_FOUND", "Wrong authorization data"), start)
            if error is not None:
                return self._error(rec, error, start)
            fault = self._faults.take_request(method, inner)
        if fault is not None:
            outcome = self._fault_outcome(rec, fault, start)
            if outcome is not None:
                return outcome
        status, body = self._execute(rec, params, start)
        err = (body.get("error") or body.get("error_description")) if status >= 400 else None
        if rec.fault == "lost_reply":  # the write happened; the reply never leaves
            return self._finish(rec, None, None, start, err)
        return self._finish(rec, status, body, start, err)

    def _execute(self, rec: RequestRecord, params: dict[str, Any], start: float) -> tuple[int, dict[str, Any]]:
        method = rec.method
        reply: Reply | None = None
        failure = EmuError(500, "INTERNAL_SERVER_ERROR", "Internal server error")
        with self._lock:
            limit = self.config.operating_limit
            try:
                if limit is not None and self._ledger.operating(method) >= limit:
                    raise EmuError(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")
                began = time.time()
                try:
                    reply = self.invoke(method, params)
                finally:
                    self._ledger.add(method, time.time() - began)
            except EmuError as exc:
                failure = exc
            except Exception as exc:  # a bug in the emulator must not kill the server thread
                log.exception("emulator method %s failed", method)
                failure = EmuError(500, "INTERNAL_SERVER_ERROR", f"Emulator error: {type(exc).__name__}")
        self._fire_changes("rest")
        tblock = self._time(method, start)
        if reply is None:
            return failure.status, {**failure.body(), "time": tblock}
        body: dict[str, Any] = {"result": reply.value}
        if reply.next is not None:
            body["next"] = reply.next
        if reply.total is not None:
            body["total"] = reply.total
        body["time"] = tblock
        return 200, body
