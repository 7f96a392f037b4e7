"""Pure: what a portal posts when it installs or uninstalls the relay's local application.

* Install — the local application's "initial installation path" gets what ``ONAPPINSTALL`` carries
  (``api-reference/common/events/on-app-install.md``, ``settings/app-installation/local-apps/
  installation-callback.md``): ``auth[access_token]``, ``auth[refresh_token]``, ``auth[expires_in]``,
  ``auth[application_token]``, ``auth[member_id]``, ``auth[domain]``, ``auth[client_endpoint]``…; an
  application with a UI page gets ``AUTH_ID``/``REFRESH_ID``/``AUTH_EXPIRES``/``APPLICATION_TOKEN``/
  ``member_id`` and the domain in ``?DOMAIN=`` (``settings/oauth/simple-way.md``).  Both are accepted.
* Uninstall — ``ONAPPUNINSTALL`` (``api-reference/common/events/on-app-uninstall.md``): no tokens, only
  ``auth[application_token]`` to check against the one stored at install.

The portal must be the configured one: ``domain`` (and ``member_id`` when pinned) must match, and a
``client_endpoint`` must point at that domain — the relay never calls an address taken from a body.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relay.errors import BadRequest, Forbidden
from relay.intake.bitrix24 import host_of

INSTALL, UNINSTALL = "ONAPPINSTALL", "ONAPPUNINSTALL"


@dataclass(frozen=True)
class Install:
    """The tokens a portal handed over at install (plain: the caller seals them at once)."""

    member_id: str
    domain: str
    access_token: str
    refresh_token: str
    application_token: str
    expires_in: float


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def install(payload: Mapping[str, Any], query: Mapping[str, str], *, domain: str, member_id: str | None,
            endpoint_hosts: tuple[str, ...] = ()) -> Install:
    """Check an install call against the configured portal; BadRequest / Forbidden say what is wrong."""
    auth = payload.get("auth")
    if isinstance(auth, Mapping) and auth.get("access_token"):
        got = {k: _text(auth.get(k)) for k in ("access_token", "refresh_token", "application_token", "member_id",
                                               "domain", "client_endpoint", "expires_in")}
    else:  # the UI-style install POST
        got = {"access_token": _text(payload.get("AUTH_ID")), "refresh_token": _text(payload.get("REFRESH_ID")),
               "application_token": _text(payload.get("APPLICATION_TOKEN")),
               "member_id": _text(payload.get("member_id")), "domain": _text(query.get("DOMAIN")),
               "client_endpoint": "", "expires_in": _text(payload.get("AUTH_EXPIRES"))}
    missing = [k for k in ("access_token", "refresh_token", "application_token", "member_id", "domain") if not got[k]]
    if missing:
        raise BadRequest(f"install call without {', '.join(missing)}: not an application install from Bitrix24")
    if got["domain"].lower() != domain.lower():
        raise Forbidden(f"install from {got['domain'][:80]!r}, but this source is the portal {domain}")
    endpoint = got["client_endpoint"]
    hosts = {h.lower() for h in (*endpoint_hosts, domain) if h}
    if endpoint and host_of(endpoint) not in hosts:
        raise Forbidden("client_endpoint points at another host than the configured portal")
    if member_id and not hmac.compare_digest(got["member_id"].encode(), member_id.encode()):
        raise Forbidden("install from another portal (member_id differs from the configured one)")
    try:
        expires_in = float(got["expires_in"] or 3600)
    except ValueError:
        expires_in = 3600.0
    return Install(member_id=got["member_id"], domain=domain, access_token=got["access_token"],
                   refresh_token=got["refresh_token"], application_token=got["application_token"],
                   expires_in=min(max(expires_in, 60.0), 86400.0))


def uninstall_token(payload: Mapping[str, Any]) -> str:
    """The ``application_token`` of an ``ONAPPUNINSTALL`` call (BadRequest without one)."""
    auth = payload.get("auth")
    token = _text(auth.get("application_token")) if isinstance(auth, Mapping) else ""
    if not token:
        raise BadRequest("ONAPPUNINSTALL without auth[application_token]")
    return token
