"""The database seam: the job queue (lease / ack / retry / dead), deal links and job history.

Only this module (with its SQLite helper :mod:`relay.sqlite_ingress`) speaks SQL (SQLAlchemy Core).
SQLite is the embedded default: WAL journal, ``synchronous=FULL`` (an acknowledged call survives a
crash or power loss), write transactions ``BEGIN IMMEDIATE`` under one host-wide write lock, and
handler calls stored by group commit.  PostgreSQL (several hosts): row locks and
``FOR UPDATE SKIP LOCKED``.  The schema is managed by Alembic (``relay/migrations``).

Queue rules:
* at most one *pending* sync job per source deal — later calls for it merge into it (``events``);
* a sync job is never leased while another sync job of the same deal is running;
* a lease that expires (the worker died) is taken back: the job becomes pending again, or merges
  into a pending job of the same deal.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    create_engine,
    event,
    exists,
    func,
    inspect,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine, RowMapping, make_url
from sqlalchemy.exc import IntegrityError

from relay.models import Enqueued, Job, Link, Transition
from relay.sqlite_ingress import GroupCommitter, WriteLock

log = logging.getLogger(__name__)

metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("deal_id", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("events", Integer, nullable=False, default=1),
    Column("trigger", String(64), nullable=False, default=""),
    Column("event_token", Text),
    Column("payload", Text, nullable=False, default="{}"),
    Column("outcome", String(32)),
    Column("target_deal_id", String(32)),
    Column("last_error", Text),
    Column("lease_owner", String(128)),
    Column("lease_until", Float),
    Column("available_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_jobs_ready", jobs.c.status, jobs.c.kind, jobs.c.available_at)
Index("ix_jobs_deal", jobs.c.source_id, jobs.c.deal_id, jobs.c.status)
_PENDING_SYNC = and_(jobs.c.status == "pending", jobs.c.kind == "sync")
Index(
    "uq_jobs_one_pending_sync",
    jobs.c.source_id,
    jobs.c.deal_id,
    unique=True,
    sqlite_where=_PENDING_SYNC,
    postgresql_where=_PENDING_SYNC,
)

links = Table(
    "links",
    metadata,
    Column("source_id", String(64), primary_key=True),
    Column("deal_id", String(32), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("target_deal_id", String(32)),
    Column("fingerprint", String(64)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("source_modified", String(40)),
)

sweeps = Table(
    "sweeps",
    metadata,
    Column("source_id", String(64), primary_key=True),
    Column("watermark", String(40)),
    Column("next_run_at", Float, nullable=False),
    Column("last_run_at", Float),
    Column("last_result", Text),
)
MIGRATIONS = Path(__file__).with_name("migrations")


def _job(row: RowMapping) -> Job:
    return Job(
        id=row["id"], kind=row["kind"], source_id=row["source_id"], deal_id=row["deal_id"],
        status=row["status"], attempts=row["attempts"], events=row["events"], trigger=row["trigger"],
        event_token=row["event_token"], payload=json.loads(row["payload"] or "{}"),
        outcome=row["outcome"], target_deal_id=row["target_deal_id"], last_error=row["last_error"],
        created_at=row["created_at"], updated_at=row["updated_at"], available_at=row["available_at"],
    )


_FINISH = update(jobs).where(jobs.c.id == bindparam("_id")).values(
    status=bindparam("status"), last_error=bindparam("last_error"), lease_owner=None, lease_until=None,
    updated_at=bindparam("updated_at"), available_at=bindparam("available_at"), outcome=bindparam("outcome"),
    target_deal_id=bindparam("target_deal_id"), payload=bindparam("payload"))


def _notify_row(t: Transition, now: float) -> dict[str, Any]:
    return {"kind": "notify", "source_id": t.job.source_id, "deal_id": t.job.deal_id, "status": "pending",
            "attempts": 0, "events": 1, "trigger": t.job.trigger, "event_token": None,
            "payload": json.dumps(t.notify, ensure_ascii=False, sort_keys=True), "available_at": now,
            "created_at": now, "updated_at": now}


def _link(row: RowMapping) -> Link:
    return Link(source_id=row["source_id"], deal_id=row["deal_id"], state=row["state"],
                target_deal_id=row["target_deal_id"], fingerprint=row["fingerprint"],
                source_modified=row["source_modified"])


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=60000", "foreign_keys=ON"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # writers take the write lock up front (no deadlocking lock upgrades); readers do not block
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("relay_write") else "BEGIN")

    return engine


class Store:
    """Jobs and links in one database; every method is one short transaction."""

    def __init__(self, url: str, *, group_commit: bool = True) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite")
        self.engine = _sqlite_engine(url) if self.sqlite else create_engine(url, pool_pre_ping=True)
        self._lock: WriteLock | None = None
        self._committer: GroupCommitter | None = None
        if self.sqlite and make_url(url).database not in (None, "", ":memory:"):
            self._lock = WriteLock(str(make_url(url).database))
            if group_commit:
                self._committer = GroupCommitter(self._raw_connection, self._lock)
        self.migrate()

    def _raw_connection(self) -> Any:
        return self.engine.raw_connection()  # kept by the committer thread for good

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A write transaction (under the SQLite write lock when there is one)."""
        writer = self.engine.execution_options(relay_write=True)
        if self._lock is None:
            with writer.begin() as conn:
                yield conn
            return
        with self._lock.held(), writer.begin() as conn:
            yield conn

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic); safe when several processes start at once."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(724001)"))  # one migrator at a time
            names = set(inspect(conn).get_table_names())
            cfg.attributes["connection"] = conn
            if "jobs" in names and "alembic_version" not in names:
                command.stamp(cfg, "0001")  # created before migrations existed
            command.upgrade(cfg, "head")

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # --- ingress side ------------------------------------------------------------------------

    def enqueue_sync(
        self, source_id: str, deal_id: str, trigger: str, *, event_token: str | None = None, now: float | None = None
    ) -> Enqueued:
        """Store a call for a deal: merge into its pending sync job, or add one (durably committed)."""
        now = time.time() if now is None else now
        if self._committer is not None:
            return self._committer.enqueue([(source_id, deal_id, trigger, event_token)], now)[0]
        for _ in range(3):
            try:
                with self._tx() as conn:
                    return self._enqueue(conn, source_id, deal_id, trigger, event_token, now)
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
            select(jobs.c.id).where(_PENDING_SYNC, jobs.c.source_id == source_id, jobs.c.deal_id == deal_id)
        ).first()
        if found is not None:
            values: dict[str, Any] = {"events": jobs.c.events + 1, "updated_at": now, "trigger": trigger}
            if event_token:
                values["event_token"] = event_token
            conn.execute(update(jobs).where(jobs.c.id == found.id).values(**values))
            return Enqueued(job_id=found.id, merged=True)
        new_id = conn.execute(
            insert(jobs).values(
                kind="sync", source_id=source_id, deal_id=deal_id, status="pending", attempts=0, events=1,
                trigger=trigger, event_token=event_token, payload="{}", available_at=now,
                created_at=now, updated_at=now,
            )
        ).inserted_primary_key[0]
        return Enqueued(job_id=int(new_id), merged=False)

    # --- worker side -------------------------------------------------------------------------

    def _reap(self, conn: Connection, now: float) -> None:
        query = select(jobs.c.id, jobs.c.kind, jobs.c.source_id, jobs.c.deal_id).where(
            jobs.c.status == "running", jobs.c.lease_until < now)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)  # one reaper per expired job
        for row in conn.execute(query).all():
            expired = update(jobs).where(jobs.c.id == row.id, jobs.c.status == "running")
            pending = None
            if row.kind == "sync":
                pending = conn.execute(select(jobs.c.id).where(
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
                    pending = conn.execute(select(jobs.c.id).where(
                        _PENDING_SYNC, jobs.c.source_id == row.source_id, jobs.c.deal_id == row.deal_id)).first()
            conn.execute(expired.values(status="merged", lease_owner=None, lease_until=None, updated_at=now,
                                        last_error=f"lease expired; merged into job {pending.id if pending else '?'}"))
            if pending is not None:
                conn.execute(update(jobs).where(jobs.c.id == pending.id).values(available_at=now, updated_at=now))

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

    # --- sweeps ------------------------------------------------------------------------------

    def claim_sweep(self, source_id: str, interval: float, *, force: bool = False,
                    now: float | None = None) -> tuple[bool, str | None]:
        """Take this source's sweep if it is due (or ``force``); return (taken, watermark)."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            if conn.execute(select(sweeps.c.source_id).where(sweeps.c.source_id == source_id)).first() is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(sweeps).values(source_id=source_id, watermark=None, next_run_at=0.0))
                except IntegrityError:
                    pass
            cond = [sweeps.c.source_id == source_id]
            if not force:
                cond.append(sweeps.c.next_run_at <= now)
            taken = conn.execute(update(sweeps).where(*cond).values(next_run_at=now + interval)).rowcount == 1
            mark = conn.execute(select(sweeps.c.watermark).where(sweeps.c.source_id == source_id)).scalar()
        return taken, mark

    def finish_sweep(self, source_id: str, watermark: str | None, result: str, now: float | None = None) -> None:
        """Record a sweep's new watermark (the newest DATE_MODIFY seen) and its summary."""
        now = time.time() if now is None else now
        values: dict[str, Any] = {"last_run_at": now, "last_result": result}
        if watermark:
            values["watermark"] = watermark
        with self._tx() as conn:
            conn.execute(update(sweeps).where(sweeps.c.source_id == source_id).values(**values))

    def request_sweep(self, source_id: str | None = None) -> None:
        """Make sweeps due now (all sources, or one); a worker runs them on its next round."""
        with self._tx() as conn:
            query = update(sweeps).values(next_run_at=0.0)
            if source_id is not None:
                query = query.where(sweeps.c.source_id == source_id)
            conn.execute(query)

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
            self._record_links(conn, transitions, now)
            notes = [_notify_row(t, now) for t in transitions if t.notify is not None and t.job.id in owned]
            if notes:
                conn.execute(insert(jobs), notes)
        return [t.job.id in owned for t in transitions]

    @staticmethod
    def _pending_keys(conn: Connection, retried: Sequence[Job]) -> set[tuple[str, str]]:
        keys = {(j.source_id, j.deal_id) for j in retried if j.kind == "sync"}
        if not keys:
            return set()
        found = conn.execute(select(jobs.c.source_id, jobs.c.deal_id).where(
            _PENDING_SYNC, jobs.c.deal_id.in_({k[1] for k in keys})))
        return {(r.source_id, r.deal_id) for r in found} & keys

    @staticmethod
    def _job_values(t: Transition, now: float, waiting: set[tuple[str, str]]) -> dict[str, Any]:
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

    def _record_links(self, conn: Connection, transitions: Sequence[Transition], now: float) -> None:
        new = {(t.job.source_id, t.job.deal_id): t.link for t in transitions if t.link is not None}
        forget = [{"s": t.job.source_id, "d": t.job.deal_id} for t in transitions
                  if t.link is None and t.forget_creating]
        if forget:
            conn.execute(links.delete().where(links.c.source_id == bindparam("s"), links.c.deal_id == bindparam("d"),
                                              links.c.state == "creating"), forget)
        if not new:
            return
        existing = self._existing_links(conn, list(new))
        values = [{"s": k[0], "d": k[1], "state": "linked", "target_deal_id": v[0], "fingerprint": v[1],
                   "source_modified": v[2], "updated_at": now} for k, v in new.items()]
        updates = [v for v in values if (v["s"], v["d"]) in existing]
        inserts = [{"source_id": v.pop("s"), "deal_id": v.pop("d"), "created_at": now, **v}
                   for v in values if (v["s"], v["d"]) not in existing]
        if updates:
            conn.execute(update(links).where(links.c.source_id == bindparam("s"), links.c.deal_id == bindparam("d"))
                         .values(state=bindparam("state"), target_deal_id=bindparam("target_deal_id"),
                                 fingerprint=bindparam("fingerprint"), source_modified=bindparam("source_modified"),
                                 updated_at=bindparam("updated_at")), updates)
        if inserts:
            conn.execute(insert(links), inserts)

    @staticmethod
    def _existing_links(conn: Connection, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        found = conn.execute(select(links.c.source_id, links.c.deal_id).where(
            links.c.deal_id.in_({k[1] for k in keys})))
        return {(r.source_id, r.deal_id) for r in found} & set(keys)

    def complete(self, job: Job, owner: str, *, status: str, outcome: str, target_deal_id: str | None = None,
                 error: str | None = None, notify: dict[str, Any] | None = None, now: float | None = None) -> bool:
        """End one leased job (done / skipped / dead), optionally queueing its notification."""
        return self.finish(owner, [Transition(job, status, outcome=outcome, target_deal_id=target_deal_id,
                                              error=error, notify=notify)], now)[0]

    def retry(self, job: Job, owner: str, *, error: str, delay: float, payload: dict[str, Any] | None = None,
              now: float | None = None) -> bool:
        """Put one leased job back to pending, ready after ``delay`` seconds, keeping the error."""
        return self.finish(owner, [Transition(job, "pending", error=error, delay=delay, payload=payload)], now)[0]

    # --- links -------------------------------------------------------------------------------

    def link(self, source_id: str, deal_id: str) -> Link | None:
        """The link of a source deal, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(links).where(links.c.source_id == source_id, links.c.deal_id == deal_id)).mappings().first()
        return _link(row) if row is not None else None

    def mark_creating(self, keys: Iterable[tuple[str, str]], now: float | None = None) -> None:
        """Record, before sending, that a create is about to be attempted for these deals."""
        now = time.time() if now is None else now
        keys = list(dict.fromkeys(keys))
        with self._tx() as conn:
            existing = self._existing_links(conn, keys)
            rows = [{"source_id": s, "deal_id": d, "state": "creating", "created_at": now, "updated_at": now}
                    for s, d in keys if (s, d) not in existing]
            if rows:
                conn.execute(insert(links), rows)

    def links(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Link]:
        """The links of many source deals at once (missing ones are absent)."""
        if not keys:
            return {}
        wanted = set(keys)
        with self.engine.connect() as conn:
            rows = conn.execute(select(links).where(links.c.deal_id.in_({k[1] for k in wanted}))).mappings()
            found = [_link(r) for r in rows]
        return {(lk.source_id, lk.deal_id): lk for lk in found if (lk.source_id, lk.deal_id) in wanted}

    def set_link(self, source_id: str, deal_id: str, target_deal_id: str, fingerprint: str | None,
                 now: float | None = None) -> None:
        """Record the target deal of a source deal and the fingerprint last written to it."""
        with self._tx() as conn:
            self._set_link(conn, (source_id, deal_id), target_deal_id, fingerprint, time.time() if now is None else now)

    def _set_link(self, conn: Connection, key: tuple[str, str], target_deal_id: str, fingerprint: str | None,
                  now: float, source_modified: str | None = None) -> None:
        values = {"state": "linked", "target_deal_id": target_deal_id, "fingerprint": fingerprint,
                  "source_modified": source_modified, "updated_at": now}
        done = conn.execute(update(links).where(links.c.source_id == key[0], links.c.deal_id == key[1])
                            .values(**values)).rowcount
        if not done:
            conn.execute(insert(links).values(source_id=key[0], deal_id=key[1], created_at=now, **values))

    def forget_creating(self, source_id: str, deal_id: str) -> None:
        """Drop a ``creating`` mark after the target certainly refused the create."""
        with self._tx() as conn:
            conn.execute(links.delete().where(links.c.source_id == source_id, links.c.deal_id == deal_id,
                                              links.c.state == "creating"))

    def unlink(self, source_id: str, deal_id: str) -> bool:
        """Forget a link entirely (the next transfer creates a new target deal)."""
        with self._tx() as conn:
            return conn.execute(links.delete().where(links.c.source_id == source_id,
                                                     links.c.deal_id == deal_id)).rowcount == 1

    # --- inspection and replay ----------------------------------------------------------------

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

    def replay(self, job_id: int, now: float | None = None) -> Enqueued:
        """Run a finished job again: a sync job re-reads its deal; a notify job is resent."""
        now = time.time() if now is None else now
        job = self.job(job_id)
        if job is None:
            raise KeyError(job_id)
        if job.status in ("pending", "running"):
            return Enqueued(job_id=job.id, merged=True)
        if job.kind == "sync":
            return self.enqueue_sync(job.source_id, job.deal_id, "REPLAY", event_token=job.event_token, now=now)
        with self._tx() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job.id).values(
                status="pending", attempts=0, available_at=now, updated_at=now))
        return Enqueued(job_id=job.id, merged=False)

    def replay_dead(self, *, source_id: str | None = None, since: float | None = None,
                    now: float | None = None) -> list[tuple[int, Enqueued]]:
        """Replay every dead sync job (newest per deal), optionally of one source / dead since a time."""
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
        for row in rows:
            if (row.source_id, row.deal_id) not in seen:
                seen.add((row.source_id, row.deal_id))
                done.append((row.id, self.replay(row.id, now=now)))
        return done
