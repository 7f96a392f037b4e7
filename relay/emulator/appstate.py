"""Pure: the local server-side applications installed on one emulated portal, and who is calling.

A local application "using API only" has a handler URL and an initial installation path, a
``client_id``/``client_secret`` pair from its form, and gets an ``application_token`` at install —
``settings/app-installation/local-apps/installation-callback.md``, ``local-integrations/local-apps.md``,
``api-reference/common/events/on-app-install.md``.  Its event bindings, robots and offline queue go
when it is uninstalled — ``settings/app-uninstallation.md``, ``api-reference/events/event-bind.md``,
``api-reference/bizproc/bizproc-robot/bizproc-robot-delete.md``.

:class:`AppState` lives in :class:`relay.emulator.state.PortalState`; the portal's lock guards it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from relay.emulator.core import EmuError
from relay.emulator.oauth import TokenBook
from relay.emulator.offline import OfflineQueue


@dataclass(frozen=True)
class Caller:
    """Who the REST call being executed comes from: an inbound webhook/user (``client_id`` None) or an
    installed application, with the call's ``auth_connector`` ("" when none)."""

    client_id: str | None = None
    user_id: int = 1
    connector: str = ""


@dataclass
class AppBinding:
    """One ``event.bind`` registration (``handler`` "" = offline)."""

    id: int
    client_id: str
    event: str
    handler: str
    user_id: int
    connector: str
    options: dict[str, int] = field(default_factory=dict)
    last_ping: float = 0.0

    @property
    def offline(self) -> bool:
        """An offline binding has no handler — ``api-reference/events/offline-events.md``."""
        return self.handler == ""

    def as_event_get(self) -> dict[str, Any]:
        """The ``event.get`` item: online ``event, handler, auth_type, offline=0``; offline
        ``event, connector_id, offline=1`` — ``api-reference/events/event-get.md`` (offline shape from
        the ``rest`` module source, UNVERIFIED)."""
        if self.offline:
            return {"event": self.event, "connector_id": self.connector, "offline": 1}
        return {"event": self.event, "handler": self.handler, "auth_type": str(self.user_id), "offline": 0}

    def as_dict(self) -> dict[str, Any]:
        """Everything the emulator keeps (for tests and the control API)."""
        return {"id": self.id, "client_id": self.client_id, "event": self.event, "handler": self.handler,
                "auth_type": self.user_id, "offline": self.offline, "connector": self.connector,
                "options": dict(self.options)}


@dataclass
class Workflow:
    """A robot run started by ``run_robot``, waiting (when ``use_subscription``) for ``bizproc.event.send``."""

    workflow_id: str
    event_token: str
    client_id: str
    code: str
    deal_id: int
    properties: dict[str, Any]
    use_subscription: bool
    answer: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data; ``status`` is ``waiting``, ``answered`` or ``not waiting``."""
        status = "answered" if self.answer else "waiting" if self.use_subscription else "not waiting"
        return {"workflow_id": self.workflow_id, "event_token": self.event_token, "client_id": self.client_id,
                "code": self.code, "deal_id": self.deal_id, "properties": dict(self.properties),
                "use_subscription": self.use_subscription, "status": status, "answer": self.answer}


@dataclass
class InstalledApp:
    """A local application: its form data, the pair last issued (install or refresh) and its robots."""

    client_id: str
    client_secret: str
    handler_url: str
    install_url: str
    application_token: str
    scope: str
    version: str = "1"
    language_id: str = "en"
    installed: bool = True
    access_token: str = ""
    refresh_token: str = ""
    expires: float = 0.0
    user_id: int = 1
    #: ``bizproc.robot.add`` data by ``CODE`` (keys upper-cased like Bitrix24 does)
    robots: dict[str, dict[str, Any]] = field(default_factory=dict)

    def scopes(self) -> set[str]:
        """The granted scopes (``scope`` is comma-separated — ``settings/oauth/auto-renewal.md``)."""
        return {s.strip() for s in self.scope.replace(" ", ",").split(",") if s.strip()}


@dataclass
class Delivery:
    """An outgoing call decided under the lock, posted later by a sender thread."""

    url: str
    event: str
    deal_id: int | None
    client_id: str
    payload: dict[str, Any]


@dataclass
class AppState:
    """Applications, tokens, bindings, offline queue and robot runs of one portal."""

    apps: dict[str, InstalledApp] = field(default_factory=dict)
    tokens: TokenBook = field(default_factory=TokenBook)
    bindings: list[AppBinding] = field(default_factory=list)
    offline: OfflineQueue = field(default_factory=OfflineQueue)
    workflows: dict[str, Workflow] = field(default_factory=dict)
    #: calls to post once the lock is released (see ``AppMixin._fire_changes``)
    outbox: list[Delivery] = field(default_factory=list)
    #: how many entries at the head of ``PortalState.changes`` were routed to applications already
    routed: int = 0
    next_binding: int = 0

    def installed(self, client_id: str | None) -> InstalledApp | None:
        """The installed application ``client_id`` (None when unknown or uninstalled)."""
        app = self.apps.get(client_id) if client_id is not None else None
        return app if app is not None and app.installed else None


def check_callback(url: str, app: InstalledApp) -> None:
    """A handler URL an application may register (``bizproc.robot.*`` ``HANDLER``, ``event.bind`` ``handler``).

    The docs say: "The link must have the same domain where the application is installed", errors
    ``ERROR_WRONG_HANDLER_URL`` "Wrong handler URL", ``ERROR_UNSUPPORTED_PROTOCOL`` "Unsupported handler
    protocol" — ``api-reference/bizproc/bizproc-robot/bizproc-robot-add.md``.  The rest follows the
    ``rest`` module's ``HandlerHelper::checkCallback`` (UNVERIFIED by the docs): the host must contain a
    dot, the scheme be http(s), and the host equal the host of the application's handler URL or
    installation path (any host when one of those is ``localhost``) — else 400
    ``ERROR_HANDLER_URL_MATCH`` "Handler URL host doesn't match application URL".
    """
    parts = urlsplit(url.strip()) if isinstance(url, str) else None
    host = (parts.hostname or "") if parts else ""
    if parts is None or host.find(".") <= 0:
        raise EmuError(400, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL")
    if parts.scheme not in ("http", "https"):
        raise EmuError(400, "ERROR_UNSUPPORTED_PROTOCOL", "Unsupported handler protocol")
    if not app.handler_url:  # an application without a handler URL may name any host
        return
    own = [urlsplit(u).hostname or "" for u in (app.handler_url, app.install_url) if u]
    if host not in own and "localhost" not in own:
        raise EmuError(400, "ERROR_HANDLER_URL_MATCH", "Handler URL host doesn't match application URL")
