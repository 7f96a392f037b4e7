"""Sweep bookkeeping: per source, when the next recovery sweep is due and its watermark."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from relay.store.base import StoreBase
from relay.store.schema import sweeps


class SweepsMixin(StoreBase):
    """Claiming and recording sweeps (one worker per source and interval)."""

    def claim_sweep(self, source_id: str, interval: float, *, force: bool = False,
                    now: float | None = None) -> tuple[bool, str | None]:
        """Take this source's sweep if it is due (or ``force``); return (taken, watermark).

        A sweep that is not due is told by a read, so polling workers take no write lock."""
        now = time.time() if now is None else now
        if not force:
            with self.engine.connect() as conn:
                row = conn.execute(select(sweeps.c.next_run_at, sweeps.c.watermark).where(
                    sweeps.c.source_id == source_id)).first()
            if row is not None and row.next_run_at > now:
                return False, row.watermark
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
