"""The job queue: store calls (merging per deal), lease, renew, finish a round, inspect, replay.

Queue rules:
* at most one *pending* sync job per source deal — later calls for it merge into it (``events``);
* a sync job is never leased while another sync job of the same deal is running;
* a lease that expires (the worker died) is taken back: the job becomes pending again, or merges
  into a pending job of the same deal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import exists, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from relay.models import Enqueued, Job, Transition
from relay.store.links import LinksMixin
from relay.store.schema import _FINISH, _PENDING_SYNC, _job, _notify_rows, jobs

#: ``outcome`` of a dead job not known to be hopeless: its transient failures outlasted
#: ``worker.retry_for``, or an unexpected error ``worker.max_attempts``; the sweep queues its deal again
GAVE_UP = "gave up"


def join_tokens(*parts: str | None) -> str | None:
    """Event tokens of merged robot calls, one per line, without repeats (None when there are none)."""
    tokens = [t for p in parts for t in (p or "").split("\n") if t]
    return "\n".join(dict.fromkeys(tokens)) or None


class QueueMixin(LinksMixin):
    """Jobs: from the handler's call to done, skipped, dead or merged."""

    def enqueue_sync(
        self, source_id: str, deal_id: str, trigger: str, *, event_token: str | None = None, now: float | None = None,
        robot: dict[str, str] | None = None,
    ) -> Enqueued:
        """Store a call for a deal: merge into its pending sync job, or add one (durably committed).
        ``robot``: an application robot's settings, kept with the job (the latest call's win)."""
        now = time.time() if now is None else now
        text = json.dumps({"robot": robot}, ensure_ascii=False, sort_keys=True) if robot else "{}"
        if self._committer is not None:
            return self._committer.enqueue([(source_id, deal_id, trigger, event_token)], now, payloads=[text])[0]
        for _ in range(3):
            try:
                with self._tx() as conn:
                    queued = self._enqueue(conn, source_id, deal_id, trigger, event_token, now)
                    if robot:
                        conn.execute(update(jobs).where(jobs.c.id == queued.job_id).values(payload=text))
                    return queued
            except IntegrityError:  # a concurrent writer inserted the pending job first
                continue
        raise RuntimeError("could not enqueue: pending-job race did not settle")

    def enqueue_record(self, source_id: str, key: str, payload: dict[str, Any], trigger: str = "1C",
                       now: float | None = None) -> Enqueued:
        """Store a call that carries its record's data (a 1C base): merge into the record's pending job,
        replacing its payload (the latest state wins), or add one (durably committed)."""
        now = time.time() if now is None else now
        text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
        if self._committer is not None:
            return self._committer.enqueue_payloads([(source_id, key, trigger, text)], now)[0]
        for _ in range(3):
            try:
                with self._tx() as conn:
                    queued = self._enqueue(conn, source_id, key, trigger, None, now)
                    conn.execute(update(jobs).where(jobs.c.id == queued.job_id).values(payload=text))
                    return queued
            except IntegrityError:  # a concurrent writer inserted the pending job first
                continue
        raise RuntimeError("could not enqueue: pending-job race did not settle")

    def enqueue_many(self, source_id: str, deal_ids: Sequence[str], trigger: str,
                     now: float | None = None) -> list[Enqueued]:
        """Store calls for many deals of one source at once (the sweep)."""
        now = time.time() if now is None else now
        if self._committer is not None:
            return self._committer.enqueue([(source_id, d, trigger, None) for d in deal_ids], now)
        try:
            with self._tx() as conn:
                return [self._enqueue(conn, source_id, d, trigger, None, now) for d in deal_ids]
        except IntegrityError:  # raced with the handler: one by one
            return [self.enqueue_sync(source_id, d, trigger, now=now) for d in deal_ids]

    def _enqueue(
        self, conn: Connection, source_id: str, deal_id: str, trigger: str, event_token: str | None, now: float
    ) -> Enqueued:
        found = conn.execute(
            select(jobs.c.id, jobs.c.event_token).where(_PENDING_SYNC, jobs.c.source_id == source_id,
                                                        jobs.c.deal_id == deal_id)
        ).first()
        if found is not None:
            values: dict[str, Any] = {"events": jobs.c.events + 1, "updated_at": now, "trigger": trigger}
            if event_token:  # every robot call keeps its token: each gets its own answer
                values["event_token"] = join_tokens(found.event_token, event_token)
            conn.execute(update(jobs).where(jobs.c.id == found.id).values(**values))
            return Enqueued(job_id=found.id, merged=True)
        inserted = conn.execute(
            insert(jobs).values(
                kind="sync", source_id=source_id, deal_id=deal_id, status="pending", attempts=0, events=1,
                trigger=trigger, event_token=event_token, payload="{}", available_at=now,
                created_at=now, updated_at=now,
            )
        ).inserted_primary_key
        assert inserted is not None
        return Enqueued(job_id=int(inserted[0]), merged=False)

    def _reap(self, conn: Connection, now: float) -> None:
        query = select(jobs.c.id, jobs.c.kind, jobs.c.source_id, jobs.c.deal_id, jobs.c.event_token).where(
            jobs.c.status == "running", jobs.c.lease_until < now)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)  # one reaper per expired job
        for row in conn.execute(query).all():
            expired = update(jobs).where(jobs.c.id == row.id, jobs.c.status == "running")
            pending = None
            if row.kind == "sync":
                pending = conn.execute(select(jobs.c.id, jobs.c.event_token).where(
                    _PENDING_SYNC, jobs.c.source_id == row.source_id, jobs.c.deal_id == row.deal_id,
                    jobs.c.id != row.id)).first()
            if pending is None:
                try:
                    with conn.begin_nested():
                        conn.execute(expired.values(status="pending", lease_owner=None, lease_until=None,
                                                    available_at=now, updated_at=now,
                                                    last_error="lease expired (worker stopped); taken back"))
                    continue
                except IntegrityError:  # a call for this deal was queued meanwhile
                    pending = conn.execute(select(jobs.c.id, jobs.c.event_token).where(
                        _PENDING_SYNC, jobs.c.source_id == row.source_id, jobs.c.deal_id == row.deal_id)).first()
            conn.execute(expired.values(status="merged", lease_owner=None, lease_until=None, updated_at=now,
                                        last_error=f"lease expired; merged into job {pending.id if pending else '?'}"))
            if pending is not None:
                conn.execute(update(jobs).where(jobs.c.id == pending.id).values(
                    available_at=now, updated_at=now, event_token=join_tokens(pending.event_token, row.event_token)))

    def claim(self, owner: str, kind: str, *, limit: int = 1, lease_seconds: float = 120.0,
              now: float | None = None) -> list[Job]:
        """Lease up to ``limit`` ready jobs of ``kind`` (oldest first) for ``owner``."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            self._reap(conn, now)
            cond = [jobs.c.kind == kind, jobs.c.status == "pending", jobs.c.available_at <= now]
            if kind == "sync":
                running = jobs.alias("running")
                cond.append(~exists().where(
                    running.c.kind == "sync", running.c.status == "running",
                    running.c.source_id == jobs.c.source_id, running.c.deal_id == jobs.c.deal_id))
            query = select(jobs.c.id).where(*cond).order_by(jobs.c.available_at, jobs.c.id).limit(limit)
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = [r.id for r in conn.execute(query)]
            if not ids:
                return []
            conn.execute(update(jobs).where(jobs.c.id.in_(ids)).values(
                status="running", attempts=jobs.c.attempts + 1, lease_owner=owner,
                lease_until=now + lease_seconds, updated_at=now))
            rows = conn.execute(select(jobs).where(jobs.c.id.in_(ids)).order_by(jobs.c.id)).mappings().all()
            return [_job(r) for r in rows]

    def renew(self, owner: str, job_ids: Sequence[int], lease_seconds: float, now: float | None = None) -> set[int]:
        """Extend the leases of these jobs; return the ids still ours (a lost lease is not renewed)."""
        now = time.time() if now is None else now
        if not job_ids:
            return set()
        with self._tx() as conn:
            mine = {r.id for r in conn.execute(select(jobs.c.id).where(
                jobs.c.id.in_(list(job_ids)), jobs.c.status == "running", jobs.c.lease_owner == owner,
                jobs.c.lease_until >= now))}
            if mine:
                conn.execute(update(jobs).where(jobs.c.id.in_(mine)).values(lease_until=now + lease_seconds))
        return mine

    def ready(self, kind: str, now: float | None = None) -> tuple[int, float]:
        """How many ``kind`` jobs are ready, and when the newest of them arrived (0 if none)."""
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            count, newest = conn.execute(select(func.count(), func.max(jobs.c.updated_at)).where(
                jobs.c.kind == kind, jobs.c.status == "pending", jobs.c.available_at <= now)).one()
        return int(count), float(newest or 0.0)

    def finish(self, owner: str, transitions: Sequence[Transition], now: float | None = None) -> list[bool]:
        """Record a whole round in one transaction (a few statements, whatever its size).

        Returns, per transition, False when the job's lease was lost (another worker owns it now);
        facts about the target (links) are recorded either way.
        """
        now = time.time() if now is None else now
        if not transitions:
            return []
        with self._tx() as conn:
            ids = [t.job.id for t in transitions]
            mine = select(jobs.c.id).where(jobs.c.id.in_(ids), jobs.c.status == "running", jobs.c.lease_owner == owner)
            if conn.dialect.name == "postgresql":
                mine = mine.with_for_update()  # no reaper may take them back while we record the round
            owned = {r.id for r in conn.execute(mine)}
            waiting = self._pending_keys(conn, [t.job for t in transitions if t.status == "pending"])
            rows = [self._job_values(t, now, waiting) for t in transitions if t.job.id in owned]
            if rows:
                conn.execute(_FINISH, rows)
            self._carry_tokens(conn, [t.job for t in transitions if t.job.id in owned], rows, waiting)
            self._record_links(conn, transitions, now)
            notes = [row for t in transitions if t.job.id in owned for row in _notify_rows(t, now)]
            if notes:
                conn.execute(insert(jobs), notes)
        return [t.job.id in owned for t in transitions]

    @staticmethod
    def _pending_keys(conn: Connection, retried: Sequence[Job]) -> dict[tuple[str, str], tuple[int, str | None]]:
        """The pending sync jobs (id, event tokens) waiting for the same deals as these retried jobs."""
        keys = {(j.source_id, j.deal_id) for j in retried if j.kind == "sync"}
        if not keys:
            return {}
        found = conn.execute(select(jobs.c.id, jobs.c.source_id, jobs.c.deal_id, jobs.c.event_token).where(
            _PENDING_SYNC, jobs.c.deal_id.in_({k[1] for k in keys})))
        return {(r.source_id, r.deal_id): (r.id, r.event_token) for r in found if (r.source_id, r.deal_id) in keys}

    @staticmethod
    def _carry_tokens(conn: Connection, finished: Sequence[Job], rows: Sequence[dict[str, Any]],
                      waiting: dict[tuple[str, str], tuple[int, str | None]]) -> None:
        """A retried job merged into a waiting one hands over its robots' event tokens (none is lost)."""
        merged = {r["_id"] for r in rows if r["status"] == "merged"}
        for job in finished:
            if job.id in merged and job.event_token:
                pending_id, tokens = waiting[(job.source_id, job.deal_id)]
                conn.execute(update(jobs).where(jobs.c.id == pending_id).values(
                    event_token=join_tokens(tokens, job.event_token)))

    @staticmethod
    def _job_values(t: Transition, now: float, waiting: Mapping[tuple[str, str], object]) -> dict[str, Any]:
        job = t.job
        status, available, outcome = t.status, job.available_at, t.outcome
        if status == "pending":
            available, outcome = now + t.delay, job.outcome
            if (job.source_id, job.deal_id) in waiting and job.kind == "sync":
                status = "merged"  # a newer call for this deal waits already; it re-reads anyway
        payload = t.payload if t.payload is not None else job.payload
        return {"_id": job.id, "status": status, "last_error": t.error, "updated_at": now, "available_at": available,
                "outcome": outcome, "target_deal_id": t.target_deal_id or job.target_deal_id,
                "payload": json.dumps(payload, ensure_ascii=False, sort_keys=True)}

    def complete(self, job: Job, owner: str, *, status: str, outcome: str, target_deal_id: str | None = None,
                 error: str | None = None, notify: dict[str, Any] | None = None, now: float | None = None) -> bool:
        """End one leased job (done / skipped / dead), optionally queueing its notification."""
        return self.finish(owner, [Transition(job, status, outcome=outcome, target_deal_id=target_deal_id,
                                              error=error, notify=notify)], now)[0]

    def retry(self, job: Job, owner: str, *, error: str, delay: float, payload: dict[str, Any] | None = None,
              now: float | None = None) -> bool:
        """Put one leased job back to pending, ready after ``delay`` seconds, keeping the error."""
        return self.finish(owner, [Transition(job, "pending", error=error, delay=delay, payload=payload)], now)[0]

    def last_alert(self, source_id: str) -> float | None:
        """When the newest integrator alert about this source was queued (None: never)."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(jobs.c.created_at)).where(
                jobs.c.kind == "notify", jobs.c.trigger == "ALERT", jobs.c.source_id == source_id)).scalar()

    def gave_up_deals(self, source_id: str) -> list[str]:
        """Deals of this source whose newest sync job died of a transient cause (its retry time ran
        out): the sweep queues them again."""
        return list(dict.fromkeys(deal_id for _, deal_id in self._gave_up(source_id)))

    def gave_up_jobs(self, source_id: str) -> list[int]:
        """The ids of those newest sync jobs (1C records: replayed with the data they carry)."""
        return [job_id for job_id, _ in self._gave_up(source_id)]

    def _gave_up(self, source_id: str) -> list[tuple[int, str]]:
        newer = jobs.alias("newer")
        query = select(jobs.c.id, jobs.c.deal_id).where(
            jobs.c.kind == "sync", jobs.c.source_id == source_id, jobs.c.status == "dead",
            jobs.c.outcome == GAVE_UP,
            ~exists().where(newer.c.kind == "sync", newer.c.source_id == jobs.c.source_id,
                            newer.c.deal_id == jobs.c.deal_id, newer.c.id > jobs.c.id))
        with self.engine.connect() as conn:
            return [(r.id, r.deal_id) for r in conn.execute(query)]

    def job(self, job_id: int) -> Job | None:
        """One job by id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return _job(row) if row else None

    def jobs(self, *, status: str | None = None, kind: str | None = None, source_id: str | None = None,
             deal_id: str | None = None, limit: int = 50) -> list[Job]:
        """Jobs, newest first, filtered."""
        query = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        for col, value in ((jobs.c.status, status), (jobs.c.kind, kind), (jobs.c.source_id, source_id),
                           (jobs.c.deal_id, deal_id)):
            if value is not None:
                query = query.where(col == value)
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query).mappings()]

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of jobs per kind and status."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(jobs.c.kind, jobs.c.status, func.count()).group_by(jobs.c.kind, jobs.c.status))
            out: dict[str, dict[str, int]] = {}
            for kind, status, n in rows:
                out.setdefault(kind, {})[status] = n
            return out

    def oldest_pending(self, kind: str = "sync") -> float | None:
        """``created_at`` of the oldest pending job of ``kind`` (None: nothing waits)."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.min(jobs.c.created_at)).where(
                jobs.c.kind == kind, jobs.c.status == "pending")).scalar()

    def replay(self, job_id: int, now: float | None = None) -> Enqueued:
        """Run a finished job again: a sync job re-reads its deal; a notify job is resent."""
        now = time.time() if now is None else now
        job = self.job(job_id)
        if job is None:
            raise KeyError(job_id)
        if job.status in ("pending", "running"):
            return Enqueued(job_id=job.id, merged=True)
        if job.kind == "sync" and "data" in job.payload:  # a 1C record: its data travel with the job
            return self._replay_record(job, now)
        if job.kind == "sync":
            # no event tokens: every robot call of the job was answered when it ended
            return self.enqueue_sync(job.source_id, job.deal_id, "REPLAY", now=now)
        with self._tx() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job.id).values(
                status="pending", attempts=0, available_at=now, updated_at=now))
        return Enqueued(job_id=job.id, merged=False)

    def _replay_record(self, job: Job, now: float) -> Enqueued:
        """Queue a 1C record's job again with its data, unless a newer call for the record waits
        already (its data are newer: they win)."""
        with self._tx() as conn:
            found = conn.execute(select(jobs.c.id).where(_PENDING_SYNC, jobs.c.source_id == job.source_id,
                                                         jobs.c.deal_id == job.deal_id)).first()
            if found is not None:
                return Enqueued(job_id=found.id, merged=True)
        return self.enqueue_record(job.source_id, job.deal_id, job.payload, "REPLAY", now=now)

    def replay_dead(self, *, source_id: str | None = None, since: float | None = None,
                    now: float | None = None,
                    progress: Callable[[int, int], None] | None = None) -> list[tuple[int, Enqueued]]:
        """Replay every dead sync job (newest per deal), optionally of one source / dead since a time;
        ``progress(done, total)`` is told every 500 jobs."""
        query = select(jobs.c.id, jobs.c.source_id, jobs.c.deal_id).where(
            jobs.c.kind == "sync", jobs.c.status == "dead").order_by(jobs.c.id.desc())
        if source_id is not None:
            query = query.where(jobs.c.source_id == source_id)
        if since is not None:
            query = query.where(jobs.c.updated_at >= since)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        done: list[tuple[int, Enqueued]] = []
        seen: set[tuple[str, str]] = set()
        for n, row in enumerate(rows):
            if progress is not None and n and n % 500 == 0:
                progress(n, len(rows))
            if (row.source_id, row.deal_id) not in seen:
                seen.add((row.source_id, row.deal_id))
                done.append((row.id, self.replay(row.id, now=now)))
        return done
