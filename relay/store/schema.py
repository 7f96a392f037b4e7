"""Tables of the relay database (the Alembic migrations in ``relay/migrations`` create them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    and_,
    bindparam,
    update,
)
from sqlalchemy.engine import RowMapping

from relay.models import Job, Link, Transition

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"

metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("deal_id", String(128), nullable=False),  # a deal id, or the key of a 1C record
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
Index("ix_jobs_finished", jobs.c.status, jobs.c.kind, jobs.c.updated_at)
Index("ix_jobs_source_status", jobs.c.source_id, jobs.c.kind, jobs.c.status, jobs.c.updated_at)
Index("ix_jobs_source_created", jobs.c.source_id, jobs.c.kind, jobs.c.created_at)
_PENDING_SYNC = and_(jobs.c.status == "pending", jobs.c.kind == "sync")
Index(
    "uq_jobs_one_pending_sync",
    jobs.c.source_id,
    jobs.c.deal_id,
    unique=True,
    sqlite_where=_PENDING_SYNC,
    postgresql_where=_PENDING_SYNC,
)

#: one row per relayed record: (origin, entity type, origin id) -> target id; ``deal_id`` and
#: ``target_deal_id`` hold the ids of any entity type (``entity``: deal, company, contact…)
links = Table(
    "links",
    metadata,
    Column("source_id", String(64), nullable=False),
    Column("entity", String(16), nullable=False, default="deal", server_default="deal"),
    Column("deal_id", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("target_deal_id", String(32)),
    Column("fingerprint", String(64)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("source_modified", String(40)),
    Column("verify_at", Float),  # check the target for extra copies after this time (None: no check due)
    Column("files", String(64)),  # print of the source files last sent with the deal (relay.mapping.files)
    PrimaryKeyConstraint("source_id", "entity", "deal_id", name="pk_links"),
)
Index("ix_links_verify", links.c.verify_at)

sweeps = Table(
    "sweeps",
    metadata,
    Column("source_id", String(64), primary_key=True),
    Column("watermark", String(40)),
    Column("next_run_at", Float, nullable=False),
    Column("last_run_at", Float),
    Column("last_result", Text),
)

#: quiet sources: the newest call whose silence was alerted (one alert per silence; relay.store.quiet)
quiet_alerts = Table(
    "quiet_alerts",
    metadata,
    Column("source_id", String(64), primary_key=True),
    Column("last_call", Float, nullable=False),
    Column("alerted_at", Float, nullable=False),
)

#: application sources: the tokens a portal gave at install, sealed (relay.vault); see relay.store.portals
portals = Table(
    "portals",
    metadata,
    Column("source_id", String(64), primary_key=True),
    Column("member_id", String(64), nullable=False),
    Column("domain", String(255), nullable=False),
    Column("access_token", Text, nullable=False),
    Column("refresh_token", Text, nullable=False),
    Column("application_token", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("version", Integer, nullable=False),
    Column("refreshing_until", Float),
    Column("setup_done", Integer, nullable=False, server_default="0"),
    Column("installed_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

#: the newest ``relay mapping check`` result of each source (JSON), shown on the integrator's page
mapping_checks = Table(
    "mapping_checks",
    metadata,
    Column("source_id", String(64), primary_key=True),
    Column("checked_at", Float, nullable=False),
    Column("result", Text, nullable=False),
)

#: one row (id 1) that every /healthz check rewrites with the time, to prove a write commits
health = Table(
    "health",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("checked_at", Float, nullable=False),
)
#: the health write, the same on SQLite and PostgreSQL (named parameter ``checked_at``)
HEALTH_WRITE = ("INSERT INTO health (id, checked_at) VALUES (1, :checked_at) "
                "ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at")


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


def _notify_rows(t: Transition, now: float) -> list[dict[str, Any]]:
    """Notify jobs queued by a finished job: to the source, or integrator alerts (trigger ``ALERT``)."""
    payloads = t.notify if isinstance(t.notify, list) else [t.notify] if t.notify else []
    return [{"kind": "notify", "source_id": t.job.source_id, "deal_id": t.job.deal_id, "status": "pending",
             "attempts": 0, "events": 1, "trigger": "ALERT" if p.get("portal") == "target" else t.job.trigger,
             "event_token": None, "payload": json.dumps(p, ensure_ascii=False, sort_keys=True),
             "available_at": now, "created_at": now, "updated_at": now} for p in payloads]


def _link(row: RowMapping) -> Link:
    return Link(source_id=row["source_id"], deal_id=row["deal_id"], state=row["state"],
                target_deal_id=row["target_deal_id"], fingerprint=row["fingerprint"],
                source_modified=row["source_modified"], updated_at=row["updated_at"], files=row["files"])
