"""Links of linked records other than deals — companies and contacts now, 1C documents next.

The same table as deal links, keyed by (origin, entity type, origin id).  States:

* ``creating`` — a worker *claimed* the create (:meth:`RecordsMixin.claim_creates`) and is about to
  send it; no other worker creates the record while the claim is younger than the uncertainty window
  (after that the target is searched by the record's stamp before anyone creates it again);
* ``linked`` — the relay keeps the target record equal to the source's (created by the relay, or
  found and adopted under ``on_match: update``); ``fingerprint`` is what was last written;
* ``matched`` — an existing target record found by a match rule under ``on_match: link``: it is
  pointed at, never written;
* ``lost`` — the target record was gone at the last write: it is looked up by its stamp again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from relay.models import Link
from relay.store.base import StoreBase
from relay.store.schema import _link, links

Key = tuple[str, str]  # (origin, origin id)


@dataclass(frozen=True)
class Settled:
    """What the target now holds for one record: its id, the link state and the fingerprint written."""

    target_id: str
    state: str = "linked"  # linked | matched
    fingerprint: str | None = None


def _key(entity: str) -> ColumnElement[bool]:
    return and_(links.c.entity == entity, links.c.source_id == bindparam("s"), links.c.deal_id == bindparam("d"))


class RecordsMixin(StoreBase):
    """Reading, claiming and recording the links of any entity type."""

    def record_links(self, entity: str, keys: Sequence[Key]) -> dict[Key, Link]:
        """The links of these records (missing ones are absent)."""
        wanted = set(keys)
        if not wanted:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(links).where(links.c.entity == entity,
                                                    links.c.deal_id.in_({k[1] for k in wanted}))).mappings()
            found = [_link(r) for r in rows]
        return {(lk.source_id, lk.deal_id): lk for lk in found if (lk.source_id, lk.deal_id) in wanted}

    def claim_creates(self, entity: str, keys: Sequence[Key], window: float, now: float | None = None) -> set[Key]:
        """Claim the creation of these records: the keys returned are this caller's to create.

        A record is not claimed while another claim on it is younger than ``window`` seconds (that
        create may still land), nor when it is linked already."""
        now = time.time() if now is None else now
        claimed: set[Key] = set()
        for key in dict.fromkeys(keys):
            try:
                with self._tx() as conn:
                    params = {"s": key[0], "d": key[1]}
                    row = conn.execute(select(links.c.state).where(_key(entity)), params).first()
                    if row is None:
                        conn.execute(insert(links), [{"source_id": key[0], "entity": entity, "deal_id": key[1],
                                                      "state": "creating", "created_at": now, "updated_at": now}])
                        claimed.add(key)
                        continue
                    done = conn.execute(update(links).where(_key(entity), or_(
                        links.c.state == "lost", and_(links.c.state == "creating", links.c.updated_at <= now - window)))
                        .values(state="creating", updated_at=now), params)
                    if done.rowcount == 1:
                        claimed.add(key)
            except IntegrityError:  # another worker inserted the same claim first
                continue
        return claimed

    def settle_records(self, entity: str, facts: Mapping[Key, Settled], now: float | None = None) -> None:
        """Record the target records of these source records (one transaction)."""
        if not facts:
            return
        now = time.time() if now is None else now
        with self._tx() as conn:
            have = {(r.source_id, r.deal_id) for r in conn.execute(
                select(links.c.source_id, links.c.deal_id).where(
                    links.c.entity == entity, links.c.deal_id.in_({k[1] for k in facts})))}
            values = [{"s": k[0], "d": k[1], "state": f.state, "t": f.target_id, "f": f.fingerprint, "now": now}
                      for k, f in facts.items()]
            old = [v for v in values if (v["s"], v["d"]) in have]
            new = [{"source_id": v["s"], "entity": entity, "deal_id": v["d"], "state": v["state"],
                    "target_deal_id": v["t"], "fingerprint": v["f"], "created_at": now, "updated_at": now}
                   for v in values if (v["s"], v["d"]) not in have]
            if old:
                conn.execute(update(links).where(_key(entity)).values(
                    state=bindparam("state"), target_deal_id=bindparam("t"), fingerprint=bindparam("f"),
                    updated_at=bindparam("now")), old)
            if new:
                conn.execute(insert(links), new)

    def drop_claims(self, entity: str, keys: Sequence[Key]) -> None:
        """Forget claims whose create the target certainly refused (nothing was created)."""
        if keys:
            with self._tx() as conn:
                conn.execute(links.delete().where(_key(entity), links.c.state == "creating"),
                             [{"s": s, "d": d} for s, d in keys])

    def drop_links(self, entity: str, keys: Sequence[Key]) -> None:
        """Forget these records' links (their target records were deleted on purpose)."""
        if keys:
            with self._tx() as conn:
                conn.execute(links.delete().where(_key(entity)), [{"s": s, "d": d} for s, d in keys])

    def lose_records(self, entity: str, keys: Sequence[Key], now: float | None = None) -> None:
        """The linked target records are gone: look them up by their stamps next time."""
        if keys:
            now = time.time() if now is None else now
            with self._tx() as conn:
                conn.execute(update(links).where(_key(entity)).values(state="lost", updated_at=now),
                             [{"s": s, "d": d} for s, d in keys])
