"""Links: which target deal each source deal became, and what was last written to it.

A link is ``creating`` from just before a create is sent until its result is recorded; the
pipeline then searches the target by the deal's stamp before creating again (exactly once).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Float, and_, bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from relay.models import Link, LinkFact, Transition
from relay.store.base import StoreBase
from relay.store.schema import _link, links

#: the deal rows of the links table (other entity types are linked by relay.store.records)
DEAL = links.c.entity == "deal"
#: one deal's link, by the parameters ``s`` (source id) and ``d`` (deal id)
_KEY = and_(DEAL, links.c.source_id == bindparam("s"), links.c.deal_id == bindparam("d"))


class LinksMixin(StoreBase):
    """Reading and recording links."""

    def link(self, source_id: str, deal_id: str) -> Link | None:
        """The link of a source deal, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(links).where(links.c.source_id == source_id,
                                                   links.c.deal_id == deal_id, DEAL)).mappings().first()
        return _link(row) if row is not None else None

    def links(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Link]:
        """The links of many source deals at once (missing ones are absent)."""
        if not keys:
            return {}
        wanted = set(keys)
        with self.engine.connect() as conn:
            rows = conn.execute(select(links).where(links.c.deal_id.in_({k[1] for k in wanted}), DEAL)).mappings()
            found = [_link(r) for r in rows]
        return {(lk.source_id, lk.deal_id): lk for lk in found if (lk.source_id, lk.deal_id) in wanted}

    def mark_creating(self, keys: Iterable[tuple[str, str]], now: float | None = None) -> None:
        """Record, before sending, that a create is about to be attempted for these deals (and when)."""
        now = time.time() if now is None else now
        keys = list(dict.fromkeys(keys))
        with self._tx() as conn:
            existing = self._existing_links(conn, keys)
            rows = [{"source_id": s, "deal_id": d, "state": "creating", "created_at": now, "updated_at": now}
                    for s, d in keys if (s, d) not in existing]
            if rows:
                conn.execute(insert(links), rows)
            again = [{"s": s, "d": d} for s, d in keys if (s, d) in existing]
            if again:  # a create sent again: its uncertainty window starts now
                conn.execute(update(links).where(_KEY,
                                                 links.c.state.in_(("creating", "lost")))
                             .values(state="creating", updated_at=now), again)

    def due_checks(self, limit: int, hold: float, now: float | None = None) -> list[Link]:
        """Take up to ``limit`` linked deals whose check for extra target copies is due; they are held
        for ``hold`` seconds (no other worker takes them) until :meth:`checked` or the hold runs out."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            query = select(links).where(links.c.verify_at <= now, links.c.state == "linked", DEAL).order_by(
                links.c.verify_at).limit(limit)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            found = [_link(r) for r in conn.execute(query).mappings()]
            if found:
                conn.execute(update(links).where(_KEY)
                             .values(verify_at=now + hold), [{"s": lk.source_id, "d": lk.deal_id} for lk in found])
        return found

    def checked(self, results: Mapping[tuple[str, str], str | None], now: float | None = None) -> None:
        """Record finished checks: each deal's surviving target deal (None: keep the link as it is)."""
        now = time.time() if now is None else now
        if not results:
            return
        with self._tx() as conn:
            conn.execute(update(links).where(_KEY)
                         .values(verify_at=None), [{"s": s, "d": d} for s, d in results])
            moved = [{"s": s, "d": d, "t": t, "now": now} for (s, d), t in results.items() if t]
            if moved:  # another copy won (the oldest is kept): link to it; next sync rewrites it fully
                conn.execute(update(links).where(_KEY,
                                                 links.c.target_deal_id != bindparam("t"))
                             .values(target_deal_id=bindparam("t"), fingerprint=None, updated_at=bindparam("now")),
                             moved)

    def set_link(self, source_id: str, deal_id: str, target_deal_id: str, fingerprint: str | None,
                 now: float | None = None) -> None:
        """Record the target deal of a source deal and the fingerprint last written to it."""
        with self._tx() as conn:
            self._upsert_links(conn, {(source_id, deal_id): (target_deal_id, fingerprint, None, None)},
                               time.time() if now is None else now)

    def forget_creating(self, source_id: str, deal_id: str) -> None:
        """Drop a ``creating`` mark after the target certainly refused the create."""
        with self._tx() as conn:
            self._drop_creating(conn, [(source_id, deal_id)])

    def unlink(self, source_id: str, deal_id: str) -> bool:
        """Forget a link entirely (the next transfer creates a new target deal)."""
        with self._tx() as conn:
            return conn.execute(links.delete().where(links.c.source_id == source_id,
                                                     links.c.deal_id == deal_id, DEAL)).rowcount == 1

    def _record_links(self, conn: Connection, transitions: Sequence[Transition], now: float) -> None:
        self._drop_creating(conn, [(t.job.source_id, t.job.deal_id) for t in transitions
                                   if t.link is None and t.forget_creating])
        self._upsert_links(conn, {(t.job.source_id, t.job.deal_id): t.link for t in transitions
                                  if t.link is not None}, now)
        gone = [{"s": t.job.source_id, "d": t.job.deal_id} for t in transitions if t.unlink]
        if gone:
            conn.execute(links.delete().where(_KEY),
                         gone)
        sent = [{"s": t.job.source_id, "d": t.job.deal_id, "f": t.files} for t in transitions if t.files is not None]
        if sent:
            conn.execute(update(links).where(_KEY).values(files=bindparam("f")), sent)
        lost = [{"s": t.job.source_id, "d": t.job.deal_id, "now": now} for t in transitions if t.link_lost]
        if lost:
            conn.execute(update(links).where(_KEY)
                         .values(state="lost", updated_at=bindparam("now")), lost)

    @staticmethod
    def _drop_creating(conn: Connection, keys: Sequence[tuple[str, str]]) -> None:
        if keys:
            conn.execute(links.delete().where(_KEY,
                                              links.c.state == "creating"), [{"s": s, "d": d} for s, d in keys])

    def _upsert_links(self, conn: Connection, new: Mapping[tuple[str, str], LinkFact], now: float) -> None:
        """Mark these deals linked to (target id, fingerprint, source DATE_MODIFY): a few statements in all.

        A fact with ``verify_after`` (a fresh create) schedules the check for extra copies."""
        if not new:
            return
        existing = self._existing_links(conn, list(new))
        values = [{"s": k[0], "d": k[1], "state": "linked", "target_deal_id": v[0], "fingerprint": v[1],
                   "source_modified": v[2], "updated_at": now,
                   "verify_at": now + v[3] if len(v) > 3 and v[3] is not None else None} for k, v in new.items()]
        updates = [v for v in values if (v["s"], v["d"]) in existing]
        inserts = [{"source_id": v.pop("s"), "deal_id": v.pop("d"), "created_at": now, **v}
                   for v in values if (v["s"], v["d"]) not in existing]
        if updates:
            conn.execute(update(links).where(_KEY)
                         .values(state=bindparam("state"), target_deal_id=bindparam("target_deal_id"),
                                 fingerprint=bindparam("fingerprint"), source_modified=bindparam("source_modified"),
                                 updated_at=bindparam("updated_at"),
                                 verify_at=func.coalesce(bindparam("verify_at", type_=Float), links.c.verify_at)),
                         updates)
        if inserts:
            conn.execute(insert(links), inserts)

    @staticmethod
    def _existing_links(conn: Connection, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        found = conn.execute(select(links.c.source_id, links.c.deal_id).where(
            links.c.deal_id.in_({k[1] for k in keys}), DEAL))
        return {(r.source_id, r.deal_id) for r in found} & set(keys)
