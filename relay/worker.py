"""The worker loop: lease jobs -> pipeline -> done | skipped | retry (backoff + jitter) | dead.

The exception class decides:

* :class:`~relay.errors.TransientError` — refusals (503 ``QUERY_LIMIT_EXCEEDED``, 429
  ``OPERATION_TIME_LIMIT``), outages (5xx) and network errors — is retried with exponential backoff
  and jitter for ``worker.retry_for`` (days by default, as webhook gateways do): an outage of the
  target uses up no attempts, and the deals arrive once it ends.  A job that still fails after that
  time dies as ``gave up``, and the recovery sweep queues its deal again;
* an unexpected exception (a bug; logged with its traceback) is retried ``worker.max_attempts`` times,
  then dies as ``gave up`` too;
* :class:`~relay.errors.PermanentError` is dead at once.

A dead sync job answers its application robots with the reason, comments on the source deal only
when ``notify.failure_comment`` is set, and alerts the integrator (``notify.integrator_user_id`` on
the target portal, at most once per source every ``notify.alert_quiet`` seconds) — never the
partner's manager.  A source with ``quiet_after`` that usually calls but has sent nothing for that
long alerts the integrator once per silence (:meth:`Worker.maybe_quiet`).  Each worker has its own
lease identity, and a heartbeat renews its leases while a round runs, so a sibling never takes over a
job that is still being written.  On stop (SIGTERM) the current round finishes before the loop exits.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from relay import metrics
from relay.config import OneCBase, RelayConfig, SourceConfig
from relay.errors import PermanentError, RelayError, TransientError
from relay.models import Job, Transition
from relay.redact import REDACTOR
from relay.store import Store
from relay.store.queue import GAVE_UP
from relay.sweep import sweep_all
from relay.sync import apps, notices
from relay.sync.outcome import Outcome
from relay.sync.pipeline import Pipeline

log = logging.getLogger(__name__)
SWEEP_CHECK = 5.0  # seconds between checks whether a sweep or a copy check is due
QUIET_CHECK = 30.0  # seconds between checks for quiet sources (a quarter of the shortest quiet_after if less)
CHECK_BATCH = 1250  # fresh creates checked for extra copies per round (50 commands x 25 stamps)


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
        # unique per Worker object: threads of one process never share a lease identity
        self.owner = f"{name or socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.tuning = config.file.worker
        self._next_sweep_check = 0.0
        self._next_copy_check = 0.0
        self._next_quiet_check = 0.0
        self._alerted: dict[str, float] = {}  # source id -> when this worker last queued an alert

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
            with self._heartbeat(jobs):
                try:
                    outcomes = run(jobs)
                except Exception as exc:  # a bug must not kill the loop; the jobs retry
                    log.exception("round of %d %s jobs failed", len(jobs), kind)
                    outcomes = [Outcome(job=j, status="failed", error=exc) for j in jobs]
                self._apply(outcomes)
            handled += len(jobs)
        return handled

    @contextmanager
    def _heartbeat(self, jobs: Sequence[Job]) -> Iterator[None]:
        """Renew the round's leases every third of ``lease_seconds`` until the round is recorded."""
        stop = threading.Event()
        ids = [j.id for j in jobs]

        def beat() -> None:
            while not stop.wait(self.tuning.lease_seconds / 3):
                try:
                    self.store.renew(self.owner, ids, self.tuning.lease_seconds)
                except Exception as exc:  # the database is down: the lease may lapse, writes then stop
                    log.warning("could not renew leases of %d jobs: %s", len(ids), describe(exc))

        thread = threading.Thread(target=beat, name=f"relay-lease-{self.owner}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

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

    def maybe_check_copies(self) -> int:
        """Look for extra target copies of deals created a while ago (due checks only); return how many."""
        if time.monotonic() < self._next_copy_check:
            return 0
        self._next_copy_check = time.monotonic() + SWEEP_CHECK
        due = self.store.due_checks(CHECK_BATCH, hold=max(60.0, self.config.target.settle_seconds))
        if not due:
            return 0
        try:
            self.store.checked(self.pipeline.check_copies(due))
        except RelayError as exc:
            log.warning("copy check failed, will retry: %s", describe(exc))
        return len(due)

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

    def maybe_apps(self) -> int:
        """Application sources: make the robot and bindings of a fresh install, and move offline events
        into the queue when the portal nudged (``ONOFFLINEEVENT``) or ``sweep.interval`` passed."""
        done = 0
        for source in (s for s in self.config.file.sources if s.mode == "app"):
            row = self.store.portal(source.id)
            if row is None:
                continue
            client = self.pipeline.sources[source.id]
            if not row.setup_done:
                handler = f"{(self.config.file.public_url or '').rstrip('/')}/b24/{source.id}"
                try:
                    apps.set_up(client, source, handler, apps.funnels(self.pipeline.target),
                                self.config.mappings[source.id].deletes.source != "ignore")
                    self.store.set_up(source.id)
                except RelayError as exc:
                    log.warning("source %s: could not register the robot and events yet: %s", source.id, describe(exc))
                    continue
            taken, _ = self.store.claim_sweep(f"offline:{source.id}", self.config.file.sweep.interval)
            if not taken:
                continue
            try:
                moved = apps.drain(client, functools.partial(self._store_offline, source.id))
            except RelayError as exc:
                log.warning("source %s: offline events not read: %s", source.id, describe(exc))
                self.store.request_sweep(f"offline:{source.id}")
                continue
            self.store.finish_sweep(f"offline:{source.id}", None, f"{moved} offline event(s) queued")
            done += moved
        return done

    def maybe_quiet(self) -> int:
        """Every ``QUIET_CHECK`` seconds, alert about sources gone quiet (:meth:`check_quiet`)."""
        watched = [s.quiet_after for s in self._watched() if s.quiet_after]
        if not watched or time.monotonic() < self._next_quiet_check:
            return 0
        self._next_quiet_check = time.monotonic() + min(QUIET_CHECK, min(watched) / 4)
        try:
            return self.check_quiet(time.time())
        except RelayError as exc:
            log.warning("quiet-source check failed, will retry: %s", describe(exc))
            return 0

    def check_quiet(self, now: float) -> int:
        """Queue one integrator alert (and log a warning) for each source with ``quiet_after`` that has
        gone quiet by ``now`` (:func:`notices.is_quiet`); the store records the silence alerted, so
        restarts and sibling workers never repeat it.  Returns how many sources were found quiet."""
        cfg, found = self.config.file.notify, 0
        for source in self._watched():
            assert source.quiet_after is not None
            last, recent = self.store.calls(source.id, source.quiet_after)
            if last is None or not notices.is_quiet(now=now, last_call=last, recent_calls=recent,
                                                    quiet_after=source.quiet_after,
                                                    alerted_for=self.store.quiet_alerted(source.id)):
                continue
            payload = notices.quiet_alert(
                user_id=cfg.integrator_user_id, source_id=source.id, last_call=last, now=now, language=cfg.language,
                domain=source.host if isinstance(source, SourceConfig) else "", cockpit_url=self._cockpit_url(),
                onec=isinstance(source, OneCBase)) if cfg.integrator_user_id else None
            if self.store.claim_quiet(source.id, last, payload):
                found += 1
                log.warning("source %s has sent no calls for %s, its quiet_after is %gs (last call %s UTC, %d calls "
                            "in the quiet_after up to it): %s", source.id, notices.duration(now - last, "en"),
                            source.quiet_after, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(last)), recent,
                            f"alert queued for target user {cfg.integrator_user_id}" if payload
                            else "no alert (notify.integrator_user_id is not set)", extra={"source": source.id})
        return found

    def _watched(self) -> list[SourceConfig | OneCBase]:
        """Partner portals and 1C bases with ``quiet_after``."""
        every: list[SourceConfig | OneCBase] = [*self.config.file.sources, *self.config.file.onec]
        return [s for s in every if s.quiet_after]

    def _cockpit_url(self) -> str:
        """The relay's page for the integrator (``<public_url>/cockpit/``), or ``""``."""
        public = self.config.file.public_url
        return f"{public.rstrip('/')}/cockpit/" if public else ""

    def _store_offline(self, source_id: str, calls: Sequence[tuple[str, str]]) -> None:
        for deal_id, event in calls:
            self.store.enqueue_sync(source_id, deal_id, event)

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set, sleeping on ``wake`` (or the poll interval) when idle."""
        log.info("worker %s started", self.owner)
        while not stop.is_set():
            try:
                busy = (self.run_once() + self.maybe_sweep() + self.maybe_check_copies() + self.maybe_apps()
                        + self.maybe_quiet())
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
        for t, owned in zip(transitions, self.store.finish(self.owner, transitions), strict=True):
            job = t.job
            ids: dict[str, object] = {"source": job.source_id, "job": job.id, "deal": job.deal_id,
                                      "target": t.target_deal_id}  # fields of RELAY_LOG_FORMAT=json lines
            if not owned:
                log.warning("job %s: lease lost before it finished; another worker owns it now", job.id, extra=ids)
            elif t.status == "done":
                if job.kind == "sync" and job.created_at:
                    metrics.LATENCY.labels("1c" if ":" in job.deal_id else "deal").observe(
                        max(0.0, time.time() - job.created_at))
                log.info("job %s %s %s/%s: %s%s", job.id, job.kind, job.source_id, job.deal_id, t.outcome,
                         f" -> target deal {t.target_deal_id}" if t.target_deal_id else "", extra=ids)
            elif t.status == "skipped":
                log.info("job %s skipped %s/%s: %s", job.id, job.source_id, job.deal_id, t.error, extra=ids)
            elif t.status == "dead":
                log.error("job %s %s %s/%s dead: %s", job.id, job.kind, job.source_id, job.deal_id, t.error, extra=ids)
            else:
                log.warning("job %s %s/%s attempt %d failed, retry in %.1fs: %s", job.id, job.source_id,
                            job.deal_id, job.attempts, t.delay, t.error, extra=ids)

    def _transition(self, o: Outcome) -> Transition:
        common: dict[str, Any] = {"link": o.link, "forget_creating": o.forget_creating, "link_lost": o.link_lost,
                                  "files": o.files, "unlink": o.unlink}
        if o.status == "done":
            return Transition(o.job, "done", outcome=o.outcome, target_deal_id=o.target_deal_id, notify=o.notify,
                              **common)
        if o.status == "skipped":
            return Transition(o.job, "skipped", outcome="skipped", error=o.outcome, notify=o.notify, **common)
        job, error = o.job, o.error or RuntimeError("unknown failure")
        reason = describe(error)
        if not isinstance(error, (TransientError, PermanentError)):
            log.error("job %s: unexpected %s", job.id, reason, exc_info=error)
        age = time.time() - (job.created_at or time.time())
        if isinstance(error, TransientError):
            retry = age < self.tuning.retry_for
        else:
            retry = not isinstance(error, PermanentError) and job.attempts < self.tuning.max_attempts
        if retry:
            delay = backoff(job.attempts, self.tuning.backoff_base, self.tuning.backoff_max)
            retry_after = getattr(error, "retry_after", None)
            if retry_after:
                delay = max(delay, float(retry_after))
            return Transition(job, "pending", error=reason, delay=delay, payload=o.payload, **common)
        outcome = "dead"
        if isinstance(error, TransientError):
            outcome, reason = GAVE_UP, f"gave up after retrying for {age / 3600:.1f} h: {reason}"
        elif not isinstance(error, PermanentError):  # not known to be permanent: the sweep tries again
            outcome, reason = GAVE_UP, f"gave up after {job.attempts} attempts: {reason}"
        return Transition(job, "dead", outcome=outcome, error=reason, target_deal_id=o.target_deal_id,
                          notify=self._failure_notices(job, reason, o) if job.kind == "sync" else None, **common)

    def _failure_notices(self, job: Job, reason: str, o: Outcome) -> list[dict[str, Any]]:
        """What a dead sync job sends: robot answers (+ comment) to the source, an alert to the integrator."""
        cfg = self.config.file.notify
        out = []
        portal = self.config.source(job.source_id)  # None: a 1C base, which has nothing to tell
        source = notices.failure_notice(deal_id=job.deal_id, reason=reason, deal=o.deal,
                                        event_tokens=job.event_tokens, comment=cfg.failure_comment,
                                        ref=uuid.uuid4().hex[:12], texts=portal.texts) if portal else None
        if source is not None:
            out.append(source)
        if cfg.integrator_user_id:
            last = max(self.store.last_alert(job.source_id) or 0.0, self._alerted.get(job.source_id, 0.0))
            if time.time() - last >= cfg.alert_quiet:
                self._alerted[job.source_id] = time.time()
                url = notices.deal_url(portal.host, job.deal_id) if portal else ""
                out.append(notices.alert(user_id=cfg.integrator_user_id, source_id=job.source_id,
                                         deal_id=job.deal_id, reason=reason, quiet=cfg.alert_quiet,
                                         language=cfg.language, source_deal_url=url, cockpit_url=self._cockpit_url()))
        return out
