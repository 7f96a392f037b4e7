"""The worker loop: lease jobs -> pipeline -> done | skipped | retry (backoff + jitter) | dead.

The exception class decides: :class:`~relay.errors.TransientError` (and unexpected exceptions,
logged with their traceback) are retried with exponential backoff and jitter until
``worker.max_attempts``; :class:`~relay.errors.PermanentError` is dead at once.  A sync job that
dies queues a notify job carrying the reason to the source deal.  On stop (SIGTERM) the current
round finishes before the loop exits.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence

from relay import notices
from relay.config import RelayConfig
from relay.errors import PermanentError, TransientError
from relay.pipeline import Outcome, Pipeline
from relay.redact import REDACTOR
from relay.store import Store

log = logging.getLogger(__name__)


def describe(error: BaseException) -> str:
    """A one-line, secret-free reason for job records and comments."""
    text = str(error) or type(error).__name__
    if not isinstance(error, (TransientError, PermanentError)):
        text = f"{type(error).__name__}: {text}"
    return REDACTOR(text)[:2000]


def backoff(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Delay before retry number ``attempt`` (1-based): base·2^(n-1), capped, with 50–100 % jitter."""
    raw = min(cap, base * (2 ** max(0, attempt - 1)))
    return raw * (0.5 + 0.5 * rand())


class Worker:
    """Leases and runs jobs until stopped; several may run in threads or processes."""

    def __init__(self, config: RelayConfig, store: Store, pipeline: Pipeline, *,
                 wake: threading.Event | None = None, name: str | None = None) -> None:
        self.config, self.store, self.pipeline = config, store, pipeline
        self.wake = wake or threading.Event()
        self.owner = name or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self.tuning = config.file.worker

    def run_once(self) -> int:
        """Run one round (ready sync jobs, then ready notify jobs); return how many jobs ran."""
        handled = 0
        for kind, run in (("sync", self.pipeline.sync), ("notify", self.pipeline.notify)):
            jobs = self.store.claim(self.owner, kind, limit=self.tuning.batch_size,
                                    lease_seconds=self.tuning.lease_seconds)
            if not jobs:
                continue
            try:
                outcomes = run(jobs)
            except Exception as exc:  # a bug must not kill the loop; the jobs retry
                log.exception("round of %d %s jobs failed", len(jobs), kind)
                outcomes = [Outcome(job=j, status="failed", error=exc) for j in jobs]
            self._apply(outcomes)
            handled += len(jobs)
        return handled

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set, sleeping on ``wake`` (or the poll interval) when idle."""
        log.info("worker %s started", self.owner)
        while not stop.is_set():
            try:
                busy = self.run_once()
            except Exception:
                log.exception("worker round failed (database unavailable?)")
                busy = 0
            if not busy:
                self.wake.wait(self.tuning.poll_interval)
                self.wake.clear()
        log.info("worker %s stopped", self.owner)

    def drain(self, timeout: float = 60.0) -> int:
        """Run rounds until nothing is ready (or ``timeout``); return jobs handled. For tests and demo."""
        total, deadline = 0, time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.run_once()
            total += n
            if not n:
                return total
        return total

    # --- outcomes ----------------------------------------------------------------------------

    def _apply(self, outcomes: Sequence[Outcome]) -> None:
        for o in outcomes:
            job = o.job
            if o.status == "done":
                ok = self.store.complete(job, self.owner, status="done", outcome=o.outcome,
                                         target_deal_id=o.target_deal_id, notify=o.notify)
                log.info("job %s %s %s/%s: %s%s", job.id, job.kind, job.source_id, job.deal_id, o.outcome,
                         f" -> target deal {o.target_deal_id}" if o.target_deal_id else "")
            elif o.status == "skipped":
                ok = self.store.complete(job, self.owner, status="skipped", outcome="skipped", error=o.outcome)
                log.info("job %s skipped %s/%s: %s", job.id, job.source_id, job.deal_id, o.outcome)
            else:
                ok = self._failed(o)
            if not ok:
                log.warning("job %s: lease lost before it finished; another worker owns it now", job.id)

    def _failed(self, o: Outcome) -> bool:
        job, error = o.job, o.error or RuntimeError("unknown failure")
        reason = describe(error)
        transient = not isinstance(error, PermanentError)
        if not isinstance(error, (TransientError, PermanentError)):
            log.error("job %s: unexpected %s", job.id, reason, exc_info=error)
        if transient and job.attempts < self.tuning.max_attempts:
            delay = backoff(job.attempts, self.tuning.backoff_base, self.tuning.backoff_max)
            retry_after = getattr(error, "retry_after", None)
            if retry_after:
                delay = max(delay, float(retry_after))
            log.warning("job %s %s/%s attempt %d failed, retry in %.1fs: %s", job.id, job.source_id, job.deal_id,
                        job.attempts, delay, reason)
            return self.store.retry(job, self.owner, error=reason, delay=delay, payload=o.payload)
        if transient:
            reason = f"gave up after {job.attempts} attempts: {reason}"
        log.error("job %s %s %s/%s dead: %s", job.id, job.kind, job.source_id, job.deal_id, reason)
        notify = None
        if job.kind == "sync":
            cfg = self.config.file.notify
            notify = notices.failure_notice(deal_id=job.deal_id, reason=reason, deal=o.deal,
                                            event_token=job.event_token, comment=cfg.comment,
                                            notify_user=cfg.notify_user)
        return self.store.complete(job, self.owner, status="dead", outcome="dead", error=reason,
                                   target_deal_id=o.target_deal_id, notify=notify)
