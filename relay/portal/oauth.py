"""Application sources: their OAuth tokens, read from the store and refreshed once per portal.

The portal URL is ``https://<the source's configured domain>/rest/`` — never an address from an event
or robot body.  Access tokens live an hour; on ``expired_token`` the client asks :meth:`AppCredentials.refresh`,
which makes sure exactly one refresh runs per portal (threads of this process wait on a lock; other
processes on the store's claim, ``refreshing_until``), persists the rotated pair *before* it is used,
and lets everyone else take the new pair from the store.  The OAuth server is the configured
``oauth_server`` (``settings/oauth/auto-renewal.md``), never one named by a request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from relay.config import RelayConfig, SourceConfig
from relay.errors import AuthError, TransientError
from relay.portal.client import oauth_token
from relay.vault import Vault

log = logging.getLogger(__name__)
CLAIM = 30.0  # seconds a refresh may take before another process may try


class Sealed(Protocol):
    """A stored portal (relay.store.portals.PortalTokens): token values sealed."""

    access_token: str
    refresh_token: str
    expires_at: float
    version: int


class TokenStore(Protocol):
    """What the keeper needs of the store (relay.store.portals.PortalsMixin)."""

    def portal(self, source_id: str) -> Any: ...

    def claim_refresh(self, source_id: str, version: int, hold: float, now: float | None = None) -> bool: ...

    def rotate(self, source_id: str, version: int, *, access_token: str, refresh_token: str, expires_at: float,
               now: float | None = None) -> bool: ...

    def release_refresh(self, source_id: str, version: int) -> None: ...


def not_installed(source: SourceConfig) -> AuthError:
    return AuthError("NOT_INSTALLED", f"the relay's application is not installed on {source.domain} (source "
                                      f"{source.id}): install it there (README, 'Application sources')")


class TokenKeeper:
    """Tokens of every application source of one process."""

    def __init__(self, config: RelayConfig, store: TokenStore, *,
                 fetch: Callable[[str, Mapping[str, str]], dict[str, Any]] = oauth_token,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        key = config.file.token_key
        self.vault = Vault(key.get_secret_value()) if key is not None else None
        self.config, self.store, self._fetch, self._sleep = config, store, fetch, sleep
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def credentials(self, source: SourceConfig) -> AppCredentials:
        """The credentials a PortalClient of this source uses."""
        return AppCredentials(self, source)

    def _lock(self, source_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(source_id, threading.Lock())

    def current(self, source: SourceConfig) -> tuple[str, str]:
        """(portal REST URL, access token) of an installed source."""
        row = self.store.portal(source.id)
        if row is None or self.vault is None:
            raise not_installed(source)
        return source.rest_url, self.vault.open(row.access_token)

    def refresh(self, source: SourceConfig, stale: str) -> None:
        """Make sure the stored access token is newer than ``stale``: refresh it, or wait for whoever is."""
        assert self.vault is not None
        with self._lock(source.id):
            deadline = time.time() + CLAIM + 5
            while True:
                row = self.store.portal(source.id)
                if row is None:
                    raise not_installed(source)
                if self.vault.open(row.access_token) != stale:
                    return  # another thread or process refreshed it already
                if self.store.claim_refresh(source.id, row.version, CLAIM):
                    break
                if time.time() > deadline:
                    error = TransientError(f"a token refresh for {source.id} is stuck in another process")
                    error.retry_after = 5.0
                    raise error
                self._sleep(0.2)  # another process is refreshing: its pair lands in the store
            self._rotate(source, row)

    def _rotate(self, source: SourceConfig, row: Sealed) -> None:
        assert self.vault is not None and source.client_secret is not None
        params = {"grant_type": "refresh_token", "client_id": source.client_id or "",
                  "client_secret": source.client_secret.get_secret_value(),
                  "refresh_token": self.vault.open(row.refresh_token)}
        try:
            answer = self._fetch(self.config.file.oauth_server, params)
        except Exception:
            self.store.release_refresh(source.id, row.version)
            raise
        expires = float(answer.get("expires") or (time.time() + float(answer.get("expires_in") or 3600)))
        stored = self.store.rotate(source.id, row.version, access_token=self.vault.seal(str(answer["access_token"])),
                                   refresh_token=self.vault.seal(str(answer["refresh_token"])), expires_at=expires)
        if not stored:
            raise not_installed(source)
        log.info("refreshed the access token of source %s", source.id)


class AppCredentials:
    """:class:`relay.portal.client.Credentials` of one application source."""

    def __init__(self, keeper: TokenKeeper, source: SourceConfig) -> None:
        self.keeper, self.source = keeper, source

    def endpoint(self) -> tuple[str, str | None]:
        return self.keeper.current(self.source)

    def refresh(self, stale: str) -> None:
        self.keeper.refresh(self.source, stale)
