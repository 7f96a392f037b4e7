"""Quiet sources: when each source last called, and which silence the integrator was told about.

A *call* is a sync job queued by the source itself (an event, a robot, an offline event, a 1C post),
not by the recovery sweep or a replay; merged calls count by the job's ``events``.  The alert is
recorded with the ``created_at`` of the last call before the silence: one upsert that only moves
forward (``… ON CONFLICT DO UPDATE … WHERE last_call < excluded.last_call``, the same on SQLite and
PostgreSQL), in the same transaction as the alert's notify job, so a restart or a sibling worker
never repeats it, and a new silence (after newer calls) is alerted again.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import and_, func, insert, select, text

from relay.store.base import StoreBase
from relay.store.schema import jobs, quiet_alerts

#: sync jobs that are calls of the source (not queued by the relay itself)
_CALL = and_(jobs.c.kind == "sync", jobs.c.trigger.notin_(("SWEEP", "REPLAY")))
_CLAIM = text("INSERT INTO quiet_alerts (source_id, last_call, alerted_at) VALUES (:source_id, :last_call, :now) "
              "ON CONFLICT (source_id) DO UPDATE SET last_call = excluded.last_call, alerted_at = excluded.alerted_at "
              "WHERE quiet_alerts.last_call < excluded.last_call")
#: ``trigger`` of the notify job of a quiet-source alert (dead-job alerts are ``ALERT``)
QUIET = "QUIET"


class QuietMixin(StoreBase):
    """Reads of a source's calls and the once-per-silence record of quiet alerts."""

    def calls(self, source_id: str, window: float) -> tuple[float | None, int]:
        """When this source last called (None: never) and how many calls it made in the ``window``
        seconds up to and including that one."""
        with self.engine.connect() as conn:
            last = conn.execute(select(func.max(jobs.c.created_at)).where(
                _CALL, jobs.c.source_id == source_id)).scalar()
            if last is None:
                return None, 0
            count = conn.execute(select(func.coalesce(func.sum(jobs.c.events), 0)).where(
                _CALL, jobs.c.source_id == source_id, jobs.c.created_at >= last - window,
                jobs.c.created_at <= last)).scalar()
        return float(last), int(count or 0)

    def quiet_alerted(self, source_id: str) -> float | None:
        """The last call whose silence was alerted for this source (None: none yet)."""
        with self.engine.connect() as conn:
            value = conn.execute(select(quiet_alerts.c.last_call).where(quiet_alerts.c.source_id == source_id)).scalar()
        return None if value is None else float(value)

    def claim_quiet(self, source_id: str, last_call: float, alert: dict[str, Any] | None,
                    now: float | None = None) -> bool:
        """Record that the silence after ``last_call`` was alerted and queue ``alert`` (a notify payload
        for the target portal; None: only record); False when that silence was recorded already."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            if conn.execute(_CLAIM, {"source_id": source_id, "last_call": last_call, "now": now}).rowcount != 1:
                return False
            if alert is not None:
                conn.execute(insert(jobs).values(
                    kind="notify", source_id=source_id, deal_id=str(alert.get("deal_id", "")), status="pending",
                    attempts=0, events=1, trigger=QUIET, event_token=None,
                    payload=json.dumps(alert, ensure_ascii=False, sort_keys=True), available_at=now,
                    created_at=now, updated_at=now))
        return True
