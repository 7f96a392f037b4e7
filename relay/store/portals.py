"""Application sources' tokens: what a portal gave at install, rotated by refreshes, gone at uninstall.

Values arrive sealed (:mod:`relay.vault`): the store never sees a token in clear.  A refresh is
*claimed* (``refreshing_until``) before it is sent, so one portal has one refresh in flight across
every thread and process: refresh tokens rotate, and a second refresh with the old one would fail
and could lock the portal out (``settings/oauth/auto-renewal.md``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, or_, select, update

from relay.store.base import StoreBase
from relay.store.schema import portals


@dataclass(frozen=True)
class PortalTokens:
    """One installed portal (token values sealed)."""

    source_id: str
    member_id: str
    domain: str
    access_token: str
    refresh_token: str
    application_token: str
    expires_at: float
    version: int
    refreshing_until: float | None
    setup_done: bool


class PortalsMixin(StoreBase):
    """Install, read, rotate and forget the tokens of application sources."""

    def save_install(self, source_id: str, *, member_id: str, domain: str, access_token: str, refresh_token: str,
                     application_token: str, expires_at: float, now: float | None = None) -> None:
        """Record (or replace, on a re-install) a portal's tokens; its robot and bindings are (re)made next."""
        now = time.time() if now is None else now
        values = {"member_id": member_id, "domain": domain, "access_token": access_token,
                  "refresh_token": refresh_token, "application_token": application_token, "expires_at": expires_at,
                  "refreshing_until": None, "setup_done": 0, "updated_at": now}
        with self._tx() as conn:
            found = conn.execute(select(portals.c.version).where(portals.c.source_id == source_id)).first()
            if found is None:
                conn.execute(insert(portals).values(source_id=source_id, version=1, installed_at=now, **values))
            else:
                conn.execute(update(portals).where(portals.c.source_id == source_id).values(
                    version=found.version + 1, installed_at=now, **values))

    def portal(self, source_id: str) -> PortalTokens | None:
        """A portal's tokens (sealed), None when the application is not installed."""
        with self.engine.connect() as conn:
            row = conn.execute(select(portals).where(portals.c.source_id == source_id)).mappings().first()
        if row is None:
            return None
        return PortalTokens(source_id=row["source_id"], member_id=row["member_id"], domain=row["domain"],
                            access_token=row["access_token"], refresh_token=row["refresh_token"],
                            application_token=row["application_token"], expires_at=row["expires_at"],
                            version=row["version"], refreshing_until=row["refreshing_until"],
                            setup_done=bool(row["setup_done"]))

    def claim_refresh(self, source_id: str, version: int, hold: float, now: float | None = None) -> bool:
        """Take the portal's one refresh slot for tokens of ``version``; False when the tokens changed
        meanwhile (someone refreshed already) or another refresh is in flight."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            done = conn.execute(update(portals).where(
                portals.c.source_id == source_id, portals.c.version == version,
                or_(portals.c.refreshing_until.is_(None), portals.c.refreshing_until < now))
                .values(refreshing_until=now + hold))
        return done.rowcount == 1

    def rotate(self, source_id: str, version: int, *, access_token: str, refresh_token: str, expires_at: float,
               now: float | None = None) -> bool:
        """Store the rotated pair of a claimed refresh (before anyone uses it); False if uninstalled meanwhile."""
        now = time.time() if now is None else now
        with self._tx() as conn:
            done = conn.execute(update(portals).where(portals.c.source_id == source_id,
                                                      portals.c.version == version).values(
                access_token=access_token, refresh_token=refresh_token, expires_at=expires_at,
                version=version + 1, refreshing_until=None, updated_at=now))
        return done.rowcount == 1

    def release_refresh(self, source_id: str, version: int) -> None:
        """Give the refresh slot back after a refresh that failed."""
        with self._tx() as conn:
            conn.execute(update(portals).where(portals.c.source_id == source_id, portals.c.version == version)
                         .values(refreshing_until=None))

    def set_up(self, source_id: str) -> None:
        """The portal's robot and event bindings are made."""
        with self._tx() as conn:
            conn.execute(update(portals).where(portals.c.source_id == source_id).values(setup_done=1))

    def forget_portal(self, source_id: str) -> bool:
        """Uninstall: delete the portal's tokens."""
        with self._tx() as conn:
            return conn.execute(delete(portals).where(portals.c.source_id == source_id)).rowcount == 1
