"""What the integrator's page shows: per-source activity, recent transfers, failures, an hourly chart,
and the last mapping check of each source.

Every query is bounded — a ``LIMIT``, or a time window or a per-source lookup over an index
(``ix_jobs_finished`` on ``(status, kind, updated_at)``, ``ix_jobs_source_status`` on ``(source_id, kind,
status, updated_at)``, ``ix_jobs_source_created`` on ``(source_id, kind, created_at)``) — so the page
stays fast with hundreds of thousands of jobs (``bench/cockpit.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, insert, select, update
from sqlalchemy import Integer as SqlInteger

from relay.models import Job
from relay.store.base import StoreBase
from relay.store.schema import _job, jobs, mapping_checks, sweeps


@dataclass(frozen=True)
class SourceActivity:
    """One source's (or 1C base's) numbers over a window."""

    source_id: str
    last_call: float | None = None  # newest sync job created (a call or a sweep)
    last_success: float | None = None  # newest sync job done
    done: int = 0
    dead: int = 0
    pending: int = 0
    watermark: str | None = None  # sweep watermark (source DATE_MODIFY)

    @property
    def error_rate(self) -> float | None:
        """Dead / (done + dead) over the window; None when nothing finished."""
        total = self.done + self.dead
        return self.dead / total if total else None


class CockpitMixin(StoreBase):
    """Reads for the integrator's page and the stored mapping-check results."""

    def activity(self, source_ids: Sequence[str], window: float = 86400.0,
                 now: float | None = None) -> dict[str, SourceActivity]:
        """Per source: last call, last success, done/dead in the window, pending, sweep watermark.

        Each number is one index lookup or range (``ix_jobs_source_status``, ``ix_jobs_source_created``)."""
        now = time.time() if now is None else now
        since = now - window
        out: dict[str, SourceActivity] = {}
        with self.engine.connect() as conn:
            swept = dict(conn.execute(select(sweeps.c.source_id, sweeps.c.watermark)).all())
            for source_id in source_ids:
                mine = and_(jobs.c.source_id == source_id, jobs.c.kind == "sync")

                def count(*cond: Any, mine: Any = mine) -> int:
                    return int(conn.execute(select(func.count()).where(mine, *cond)).scalar() or 0)

                out[source_id] = SourceActivity(
                    source_id=source_id,
                    last_call=conn.execute(select(func.max(jobs.c.created_at)).where(mine)).scalar(),
                    last_success=conn.execute(select(func.max(jobs.c.updated_at))
                                              .where(mine, jobs.c.status == "done")).scalar(),
                    done=count(jobs.c.status == "done", jobs.c.updated_at >= since),
                    dead=count(jobs.c.status == "dead", jobs.c.updated_at >= since),
                    pending=count(jobs.c.status == "pending") + count(jobs.c.status == "running"),
                    watermark=swept.get(source_id))
        return out

    def recent(self, *, status: str | tuple[str, ...] = "done", source_id: str | None = None,
               limit: int = 50) -> list[Job]:
        """Newest finished sync jobs of a status (or statuses), newest first."""
        wanted = (status,) if isinstance(status, str) else status
        query = (select(jobs).where(jobs.c.status.in_(wanted), jobs.c.kind == "sync")
                 .order_by(jobs.c.updated_at.desc()).limit(limit))
        if source_id is not None:
            query = query.where(jobs.c.source_id == source_id)
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query).mappings()]

    def hourly(self, hours: int = 48, now: float | None = None) -> list[tuple[float, int, int]]:
        """(hour start, done, dead) of sync jobs finished in each of the last ``hours`` hours, oldest first."""
        now = time.time() if now is None else now
        first = (int(now // 3600) - hours + 1) * 3600
        if self.engine.dialect.name == "postgresql":
            bucket: Any = func.floor(jobs.c.updated_at / 3600)
        else:
            bucket = cast(jobs.c.updated_at / 3600, SqlInteger)  # SQLite: truncation = floor for times > 0
        query = (select(bucket.label("h"), func.sum(case((jobs.c.status == "done", 1), else_=0)),
                        func.sum(case((jobs.c.status == "dead", 1), else_=0)))
                 .where(jobs.c.status.in_(("done", "dead")), jobs.c.updated_at >= cast(first, Float),
                        jobs.c.kind == "sync")
                 .group_by("h"))
        with self.engine.connect() as conn:
            counts = {int(h): (int(d or 0), int(x or 0)) for h, d, x in conn.execute(query)}
        start = first // 3600
        return [(float(h * 3600), *counts.get(h, (0, 0))) for h in range(start, start + hours)]

    def save_check(self, source_id: str, result: dict[str, Any], now: float | None = None) -> None:
        """Keep the newest mapping-check result of a source."""
        now = time.time() if now is None else now
        text = json.dumps(result, ensure_ascii=False)
        with self._tx() as conn:
            done = conn.execute(update(mapping_checks).where(mapping_checks.c.source_id == source_id)
                                .values(checked_at=now, result=text)).rowcount
            if not done:
                conn.execute(insert(mapping_checks).values(source_id=source_id, checked_at=now, result=text))

    def checks(self) -> dict[str, dict[str, Any]]:
        """The newest mapping-check result of every source that was checked."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(mapping_checks.c.source_id, mapping_checks.c.result)).all()
        return {source_id: json.loads(result) for source_id, result in rows}

    def open_failures(self, limit: int = 50, scan: int = 500) -> tuple[list[Job], int]:
        """Dead sync jobs whose record has no newer job (not replayed, not sent again), newest first;
        and how many of the newest ``scan`` dead jobs were followed by a newer one."""
        dead = self.recent(status="dead", limit=scan)
        if not dead:
            return [], 0
        with self.engine.connect() as conn:
            newest = dict(((s, d), n) for s, d, n in conn.execute(
                select(jobs.c.source_id, jobs.c.deal_id, func.max(jobs.c.id))
                .where(jobs.c.kind == "sync", jobs.c.deal_id.in_({j.deal_id for j in dead}))
                .group_by(jobs.c.source_id, jobs.c.deal_id)))
        still = [j for j in dead if newest.get((j.source_id, j.deal_id), j.id) <= j.id]
        return still[:limit], len(dead) - len(still)
