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
from relay.errors import PermanentError, RelayError, TransientError
from relay.models import Job, Transition
from relay.pipeline import Outcome, Pipeline
from relay.redact import REDACTOR
from relay.store import Store
from relay.sweep import sweep_all

log = logging.getLogger(__name__)
SWEEP_CHECK = 5.0  # seconds between checks whether a sweep is due


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
        self._next_sweep_check = 0.0

    def run_once(self) -> int:
        """Run one round (ready sync jobs, then ready notify jobs); return how many jobs ran."""
        handled = 0
        def renew(jobs: Sequence[Job]) -> set[int]:
            return self.store.renew(self.owner, [j.id for j in jobs], self.tuning.lease_seconds)

        sync: Callable[[Sequence[Job]], list[Outcome]] = lambda jobs: self.pipeline.sync(jobs, renew)  # noqa: E731
        for kind, run in (("sync", sync), ("notify", self.pipeline.notify)):
            self._linger(kind)
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

    def _linger(self, kind: str) -> None:
        """While calls keep arriving, wait (up to 5 × ``linger``) for a full batch instead of
        spending a request of the portal's budget on a few deals; a lone call waits ``linger``."""
        linger = self.tuning.linger
        if linger <= 0:
            return
        deadline = time.monotonic() + 5 * linger
        while time.monotonic() < deadline:
            count, newest = self.store.ready(kind)
            quiet = time.time() - newest
            if count == 0 or count >= self.tuning.batch_size or quiet >= linger:
                return
            time.sleep(min(linger - quiet, 0.02))

    def maybe_sweep(self) -> int:
        """Run the recovery sweeps that are due (at most one worker runs each); return deals queued."""
        if not self.config.file.sweep.enabled or time.monotonic() < self._next_sweep_check:
            return 0
        self._next_sweep_check = time.monotonic() + SWEEP_CHECK
        try:
            return sum(r.queued for r in sweep_all(self.config, self.store, self.pipeline.sources))
        except RelayError as exc:
            log.warning("sweep failed, will retry at its next interval: %s", describe(exc))
            return 0

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set, sleeping on ``wake`` (or the poll interval) when idle."""
        log.info("worker %s started", self.owner)
        while not stop.is_set():
            try:
                busy = self.run_once() + self.maybe_sweep()
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
        transitions = [self._transition(o) for o in outcomes]
        for t, owned in zip(transitions, self.store.finish(self.owner, transitions)):
            job = t.job
            if not owned:
                log.warning("job %s: lease lost before it finished; another worker owns it now", job.id)
            elif t.status == "done":
                log.info("job %s %s %s/%s: %s%s", job.id, job.kind, job.source_id, job.deal_id, t.outcome,
                         f" -> target deal {t.target_deal_id}" if t.target_deal_id else "")
            elif t.status == "skipped":
                log.info("job %s skipped %s/%s: %s", job.id, job.source_id, job.deal_id, t.error)
            elif t.status == "dead":
                log.error("job %s %s %s/%s dead: %s", job.id, job.kind, job.source_id, job.deal_id, t.error)
            else:
                log.warning("job %s %s/%s attempt %d failed, retry in %.1fs: %s", job.id, job.source_id,
                            job.deal_id, job.attempts, t.delay, t.error)

    def _transition(self, o: Outcome) -> Transition:
        common = {"link": o.link, "forget_creating": o.forget_creating}
        if o.status == "done":
            return Transition(o.job, "done", outcome=o.outcome, target_deal_id=o.target_deal_id, notify=o.notify,
                              **common)
        if o.status == "skipped":
            return Transition(o.job, "skipped", outcome="skipped", error=o.outcome, **common)
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
            return Transition(job, "pending", error=reason, delay=delay, payload=o.payload, **common)
        if transient:
            reason = f"gave up after {job.attempts} attempts: {reason}"
        notify = None
        if job.kind == "sync":
            cfg = self.config.file.notify
            notify = notices.failure_notice(deal_id=job.deal_id, reason=reason, deal=o.deal,
                                            event_token=job.event_token, comment=cfg.comment,
                                            notify_user=cfg.notify_user)
        return Transition(job, "dead", outcome="dead", error=reason, target_deal_id=o.target_deal_id,
                          notify=notify, **common)
