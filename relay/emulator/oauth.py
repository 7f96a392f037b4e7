"""Pure: the token book of an emulated portal and its OAuth server (an emulated ``oauth.bitrix.info``).

* An access token lives ``PortalConfig.token_lifetime`` seconds (Bitrix24: one hour), a refresh token
  180 days — ``settings/oauth/index.md``, ``settings/oauth/auto-renewal.md``.
* ``GET /oauth/token/?grant_type=refresh_token&client_id=…&client_secret=…&refresh_token=…`` answers
  ``access_token``, ``client_endpoint``, ``domain`` (``oauth.bitrix.info``), ``expires``, ``expires_in``,
  ``member_id``, ``refresh_token`` (new: "retain it instead of the previous one"), ``scope``,
  ``server_endpoint``, ``status``, ``user_id`` — ``settings/oauth/auto-renewal.md``.  A refresh token
  works once: the old one is spent when the new pair is issued (rotation; that Bitrix24 refuses a
  spent one is the OAuth 2.0 norm, UNVERIFIED for oauth.bitrix.info).
* Errors ``{"error", "error_description"}``: ``invalid_request``, ``invalid_client`` ("the application
  may not be installed"), ``invalid_grant`` — ``settings/oauth/error-codes.md``.  Their HTTP status
  (400 here) and description texts are UNVERIFIED.
* A REST call with an expired token: HTTP 401 ``expired_token`` "The access token provided has expired"
  — ``_includes/system-errors.md``.  With an unknown or revoked one: 401 ``invalid_token`` "The access
  token provided is invalid." — UNVERIFIED (the docs list 401 ``NO_AUTH_FOUND`` "Wrong authorization
  data" for a wrong token; ``invalid_token`` is what SDKs map, e.g. b24pysdk ``parse_response.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from relay.emulator.config import PortalConfig, random_token
from relay.emulator.core import EmuError

SERVER_ENDPOINT = "https://oauth.bitrix.info/rest/"
OAUTH_DOMAIN = "oauth.bitrix.info"
REFRESH_LIFETIME = 180 * 24 * 3600.0
#: ``status`` of a local application — ``api-reference/common/events/on-app-install.md``
LOCAL_STATUS = "L"


def expired_token() -> EmuError:
    """401 ``expired_token`` — ``_includes/system-errors.md`` (text exactly as listed there)."""
    return EmuError(401, "expired_token", "The access token provided has expired")


def invalid_token() -> EmuError:
    """401 ``invalid_token`` for an unknown or revoked token (UNVERIFIED, see the module docstring)."""
    return EmuError(401, "invalid_token", "The access token provided is invalid.")


def oauth_error(code: str) -> tuple[int, dict[str, str]]:
    """An authorization-server error — codes from ``settings/oauth/error-codes.md`` (texts UNVERIFIED)."""
    text = {
        "invalid_request": "An incorrectly formatted authorization request was provided",
        "invalid_client": "Invalid client data was provided. The application may not be installed",
        "invalid_grant": "Invalid authorization data was provided",
    }[code]
    return 400, {"error": code, "error_description": text}


def lifetime_seconds(config: PortalConfig) -> int:
    """``expires_in`` as sent: the configured lifetime in whole seconds (3600 by default)."""
    return max(1, math.ceil(config.token_lifetime))


@dataclass
class Grant:
    """What a token stands for: the application, the user, until when, and whether it is spent."""

    client_id: str
    user_id: int
    expires_at: float
    spent: bool = False


@dataclass(frozen=True)
class Pair:
    """A freshly issued access token (and its refresh token, when one was issued)."""

    access_token: str
    refresh_token: str | None
    expires: float
    user_id: int


class TokenBook:
    """Every token the portal issued; counts refresh requests at the OAuth server."""

    def __init__(self) -> None:
        self.access: dict[str, Grant] = {}
        self.refresh: dict[str, Grant] = {}
        self.refresh_requests = 0
        self.log: list[dict[str, Any]] = []

    def issue(self, client_id: str, user_id: int, lifetime: float, now: float, *, refresh: bool = True) -> Pair:
        """A new access token (and refresh token) for ``user_id`` of the application ``client_id``."""
        access = random_token(70)
        self.access[access] = Grant(client_id, user_id, now + lifetime)
        refresh_token = random_token(70) if refresh else None
        if refresh_token is not None:
            self.refresh[refresh_token] = Grant(client_id, user_id, now + REFRESH_LIFETIME)
        return Pair(access, refresh_token, now + lifetime, user_id)

    def check(self, token: str, now: float) -> Grant:
        """The grant of a usable access token; raises the REST error for an expired/unknown one."""
        grant = self.access.get(token)
        if grant is None or grant.spent:
            raise invalid_token()
        if grant.expires_at <= now:
            raise expired_token()
        return grant

    def take_refresh(self, token: str, client_id: str, now: float) -> Grant | None:
        """Spend a refresh token of ``client_id``; None when it is unknown, spent, expired or foreign."""
        grant = self.refresh.get(token)
        if grant is None or grant.spent or grant.client_id != client_id or grant.expires_at <= now:
            return None
        grant.spent = True
        return grant

    def expire(self, client_id: str | None, now: float) -> int:
        """Make every live access token (of ``client_id``, or all) expired; returns how many."""
        count = 0
        for grant in self.access.values():
            if (client_id is None or grant.client_id == client_id) and not grant.spent and grant.expires_at > now:
                grant.expires_at = now - 1
                count += 1
        return count

    def revoke(self, client_id: str) -> None:
        """Spend every token of an uninstalled application."""
        for book in (self.access, self.refresh):
            for grant in book.values():
                if grant.client_id == client_id:
                    grant.spent = True
