"""A portal that hosts local server-side applications: install, OAuth, app-context REST calls, robots.

* **Install** ("uses API only"): right after the application is saved Bitrix24 POSTs, form-encoded, to
  the initial installation path ``event=ONAPPINSTALL``, ``data[VERSION|ACTIVE|INSTALLED|LANGUAGE_ID]``,
  ``ts``, ``auth[domain, scope, access_token, refresh_token, expires_in, server_endpoint, status,
  client_endpoint, member_id, application_token]`` — ``settings/app-installation/local-apps/installation-callback.md``,
  ``api-reference/common/events/on-app-install.md`` (no ``event_handler_id``: the docs' body has none).
* **Uninstall**: tokens stop working, the application's event handlers and robots go —
  ``settings/app-uninstallation.md``; ``ONAPPUNINSTALL`` (``data[LANGUAGE_ID]``, ``data[CLEAN]``, ``auth``
  without tokens but with ``application_token``) is posted to the handlers the application bound for it —
  ``api-reference/common/events/on-app-uninstall.md``.  Afterwards its old tokens get 401 ``invalid_token``
  and a refresh ``invalid_client`` (:mod:`relay.emulator.oauth`).
* **REST with OAuth**: ``<portal>/rest/<method>`` with ``auth=<access_token>`` —
  ``settings/how-to-call-rest-api/authorization.md``; :mod:`relay.emulator.server` routes it to
  :meth:`AppMixin.handle_app`.  Inside a method, ``state.caller`` says who calls
  (:class:`relay.emulator.appstate.Caller`).
* **Changes** made while a method runs are routed to application bindings with that call's
  ``auth_connector``; changes made by seeding helpers count as a user's (:mod:`relay.emulator.appevents`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import requests

from relay.emulator import sender
from relay.emulator.appevents import route_changes
from relay.emulator.appstate import Caller, Delivery, InstalledApp
from relay.emulator.config import random_token
from relay.emulator.core import EmuError
from relay.emulator.oauth import (
    LOCAL_STATUS,
    OAUTH_DOMAIN,
    SERVER_ENDPOINT,
    Pair,
    invalid_token,
    lifetime_seconds,
    oauth_error,
)
from relay.emulator.outgoing import OutgoingMixin
from relay.emulator.pipeline import Outcome
from relay.emulator.robots import RobotRun
from relay.emulator.robots import start as start_robot

log = logging.getLogger("relay.emulator")


def new_client_id() -> str:
    """A local application's ``client_id``: ``local.<14 hex>.<8 digits>`` (format of the form, UNVERIFIED)."""
    return f"local.{secrets.token_hex(7)}.{secrets.randbelow(10**8):08d}"


class AppMixin(OutgoingMixin):
    """Installed applications for :class:`relay.emulator.portal.Portal` (state in ``state.app``)."""

    _caller_local: threading.local

    if TYPE_CHECKING:  # provided by Portal / PipelineMixin
        def handle(self, method: str, params: dict[str, Any], *, authorized: bool = True,
                   error: EmuError | None = None) -> Outcome: ...

        def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any: ...

    # -- who is calling ----------------------------------------------------------------------------

    def _local(self) -> threading.local:
        local = self.__dict__.get("_caller_local")
        if local is None:
            local = self.__dict__.setdefault("_caller_local", threading.local())
        return local

    @contextlib.contextmanager
    def acting_as(self, caller: Caller | None) -> Iterator[None]:
        """Run REST calls of this thread as ``caller`` (None: the inbound webhook's user)."""
        local = self._local()
        previous = getattr(local, "caller", None)
        local.caller = caller
        try:
            yield
        finally:
            local.caller = previous

    @contextlib.contextmanager
    def _method_scope(self) -> Iterator[None]:
        """Around one method run under the lock: set ``state.caller``, then route the changes it made."""
        caller = getattr(self._local(), "caller", None) or Caller(None, self.config.user_id, "")
        state = self.state
        previous, state.caller = state.caller, caller
        try:
            yield
        finally:
            state.caller = previous
            self._route(caller)

    def _route(self, caller: Caller) -> None:
        app = self.state.app
        changes = self.state.changes
        if app.routed > len(changes):
            app.routed = 0
        fresh, app.routed = changes[app.routed:], len(changes)
        if fresh and app.apps:
            app.outbox.extend(route_changes(self.state, fresh, caller))

    def _fire_changes(self, origin: str) -> None:
        """Route what a user changed, let outgoing webhooks fire, then post the applications' calls."""
        with self._lock:
            self._route(Caller(None, self.config.user_id, ""))  # not routed yet = made outside a REST method
            super()._fire_changes(origin)
            self.state.app.routed = 0
            outbox, self.state.app.outbox = self.state.app.outbox, []
            for delivery in outbox:
                thread = threading.Thread(target=self._deliver_app, args=(delivery,),
                                          name=f"emu-app-{self.config.domain}", daemon=True)
                self._senders = [t for t in self._senders if t.is_alive()]
                self._senders.append(thread)
                thread.start()

    def _deliver_app(self, delivery: Delivery) -> None:
        status: int | None = None
        try:
            status, _ = sender.post_form(delivery.url, delivery.payload, timeout=5.0)
        except requests.RequestException as exc:  # no retry: Bitrix24 logs and forgets
            log.debug("%s not delivered: %s", delivery.event, type(exc).__name__)
        with self._lock:
            self._deliveries.append({"handler_url": delivery.url, "event": delivery.event,
                                     "deal_id": delivery.deal_id, "status": status, "client_id": delivery.client_id})

    # -- OAuth ---------------------------------------------------------------------------------------

    def authenticate(self, token: str, connector: str = "") -> Caller:
        """The application caller an access token stands for; raises 401 ``expired_token``/``invalid_token``."""
        with self._lock:
            grant = self.state.app.tokens.check(token, time.time())
            if self.state.app.installed(grant.client_id) is None:
                raise invalid_token()
            return Caller(grant.client_id, grant.user_id, connector)

    def handle_app(self, method: str, params: dict[str, Any], token: str | None, connector: str = "", *,
                   error: EmuError | None = None) -> Outcome:
        """A REST request authorised by ``auth=<access_token>`` (no token: 401 ``NO_AUTH_FOUND``)."""
        if not token:
            return self.handle(method, params, authorized=False, error=error)
        try:
            caller = self.authenticate(token, connector)
        except EmuError as exc:
            return self.handle(method, params, error=exc)
        with self.acting_as(caller):
            return self.handle(method, params, error=error)

    def oauth_token(self, params: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """The emulated ``oauth.bitrix.info/oauth/token/``: refresh a pair — ``settings/oauth/auto-renewal.md``."""
        with self._lock:
            book = self.state.app.tokens
            grant_type = str(params.get("grant_type") or "")
            if grant_type == "refresh_token":
                book.refresh_requests += 1
            status, body = self._refresh(grant_type, params)
            book.log.append({"grant_type": grant_type, "client_id": params.get("client_id"), "status": status,
                             "error": body.get("error"), "time": time.time()})
            return status, body

    def _refresh(self, grant_type: str, params: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        if grant_type != "refresh_token" or not params.get("refresh_token"):
            return oauth_error("invalid_request")
        app = self.state.app.apps.get(str(params.get("client_id") or ""))
        secret = str(params.get("client_secret") or "")
        if app is None or not app.installed or not secrets.compare_digest(secret.encode(), app.client_secret.encode()):
            return oauth_error("invalid_client")
        now = time.time()
        grant = self.state.app.tokens.take_refresh(str(params["refresh_token"]), app.client_id, now)
        if grant is None:
            return oauth_error("invalid_grant")
        pair = self.state.app.tokens.issue(app.client_id, grant.user_id, self.config.token_lifetime, now)
        app.access_token, app.refresh_token, app.expires = pair.access_token, pair.refresh_token or "", pair.expires
        return 200, self._token_reply(app, pair)

    def _token_reply(self, app: InstalledApp, pair: Pair) -> dict[str, Any]:
        """The refresh answer, keys as in the docs' example."""
        return {
            "access_token": pair.access_token, "client_endpoint": f"https://{self.config.domain}/rest/",
            "domain": OAUTH_DOMAIN, "expires": int(pair.expires), "expires_in": lifetime_seconds(self.config),
            "member_id": self.config.member_id, "refresh_token": pair.refresh_token, "scope": app.scope,
            "server_endpoint": SERVER_ENDPOINT, "status": LOCAL_STATUS, "user_id": pair.user_id,
        }

    # -- install / uninstall ---------------------------------------------------------------------------

    def _app(self, client_id: str | None = None) -> InstalledApp:
        installed = [a for a in self.state.app.apps.values() if a.installed]
        if client_id is not None:
            found = self.state.app.installed(client_id)
            if found is None:
                raise ValueError(f"application {client_id!r} is not installed")
            return found
        if len(installed) != 1:
            raise ValueError("no application is installed" if not installed else
                             f"several applications are installed, name one: {[a.client_id for a in installed]}")
        return installed[0]

    def install_app(self, handler_url: str, install_url: str | None = None, client_id: str | None = None,
                    client_secret: str | None = None, *, scope: str = "crm,bizproc,im,user",
                    version: str = "1", language_id: str = "en", application_token: str | None = None,
                    timeout: float = 10.0) -> tuple[int, str]:
        """Install a local application "using API only" and POST ``ONAPPINSTALL`` to ``install_url``
        (skipped when None: ``(0, "")``); returns the handler's ``(status, body)``."""
        with self._lock:
            client_id = client_id or new_client_id()
            if self.state.app.installed(client_id) is not None:
                raise ValueError(f"application {client_id!r} is installed already (uninstall_app first)")
            app = InstalledApp(client_id, client_secret or random_token(50), handler_url, install_url or "",
                               application_token or random_token(32), scope, str(version), language_id,
                               user_id=self.config.user_id)
            self.state.app.apps[client_id] = app
            pair = self.state.app.tokens.issue(client_id, app.user_id, self.config.token_lifetime, time.time())
            app.access_token, app.refresh_token, app.expires = pair.access_token, pair.refresh_token or "", pair.expires
            body = {
                "event": "ONAPPINSTALL",
                "data": {"VERSION": app.version, "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": language_id},
                "ts": str(int(time.time())),
                "auth": {"domain": self.config.domain, "scope": scope, "access_token": app.access_token,
                         "refresh_token": app.refresh_token, "expires_in": str(lifetime_seconds(self.config)),
                         "server_endpoint": SERVER_ENDPOINT, "status": LOCAL_STATUS,
                         "client_endpoint": f"https://{self.config.domain}/rest/",
                         "member_id": self.config.member_id, "application_token": app.application_token},
            }
        if not install_url:
            return 0, ""
        return sender.post_form(install_url, body, timeout=timeout)

    def uninstall_app(self, handler_url: str | None = None, *, clean: bool = True, client_id: str | None = None,
                      timeout: float = 10.0) -> list[tuple[int | None, str]]:
        """Remove the application: revoke its tokens, drop its bindings, robots and offline queue, then POST
        ``ONAPPUNINSTALL`` to its bound handlers (and ``handler_url``); returns each ``(status, body)``
        (status None: not delivered)."""
        with self._lock:
            app = self._app(client_id)
            state = self.state.app
            app.installed = False
            state.tokens.revoke(app.client_id)
            targets = [(b.handler, str(b.id)) for b in state.bindings
                       if b.client_id == app.client_id and b.event == "ONAPPUNINSTALL" and not b.offline]
            state.bindings = [b for b in state.bindings if b.client_id != app.client_id]
            state.offline.drop_app(app.client_id)
            app.robots.clear()
            auth = {"domain": self.config.domain, "server_endpoint": SERVER_ENDPOINT,
                    "client_endpoint": f"https://{self.config.domain}/rest/", "member_id": self.config.member_id,
                    "application_token": app.application_token}
            data = {"LANGUAGE_ID": app.language_id, "CLEAN": "1" if clean else "0"}
        if handler_url:
            targets.append((handler_url, ""))
        results: list[tuple[int | None, str]] = []
        for url, handler_id in targets:
            body: dict[str, Any] = {"event": "ONAPPUNINSTALL"}
            if handler_id:  # a bound handler's id, as in every bound event (UNVERIFIED for this one)
                body["event_handler_id"] = handler_id
            body.update({"data": data, "ts": str(int(time.time())), "auth": auth})
            try:
                results.append(sender.post_form(url, body, timeout=timeout))
            except requests.RequestException as exc:
                results.append((None, type(exc).__name__))
        return results

    # -- robots ----------------------------------------------------------------------------------------

    def run_robot(self, code: str, deal_id: int, properties: Mapping[str, Any] | None = None, *,
                  timeout_duration: int = 0, client_id: str | None = None,
                  timeout: float = 10.0) -> RobotRun:
        """Run the application's robot ``code`` on a deal: POST protocol notes §3.2 to its ``HANDLER`` and
        wait for ``bizproc.event.send`` with the run's ``event_token``."""
        with self._lock:
            url, body, workflow = start_robot(self.state, self._app(client_id), code, int(deal_id),
                                               dict(properties or {}), timeout_duration)
        status, text = sender.post_form(url, body, timeout=timeout)
        return RobotRun(status, text, workflow.workflow_id, workflow.event_token)

    # -- inspection ------------------------------------------------------------------------------------

    def app_tokens(self, client_id: str | None = None) -> dict[str, Any]:
        """The application's current pair (from the install or the last refresh) and its ids."""
        with self._lock:
            app = self._app(client_id)
            return {"client_id": app.client_id, "client_secret": app.client_secret,
                    "access_token": app.access_token, "refresh_token": app.refresh_token,
                    "expires": int(app.expires), "application_token": app.application_token,
                    "member_id": self.config.member_id, "domain": self.config.domain, "scope": app.scope}

    def expire_tokens(self, client_id: str | None = None) -> int:
        """Expire every live access token (of one application, or all); returns how many."""
        with self._lock:
            return self.state.app.tokens.expire(client_id, time.time())

    def oauth_refresh_count(self) -> int:
        """Refresh requests (``grant_type=refresh_token``) the OAuth server received, answered or refused."""
        with self._lock:
            return self.state.app.tokens.refresh_requests

    def oauth_requests(self) -> list[dict[str, Any]]:
        """Every OAuth server request: ``grant_type``, ``client_id``, ``status``, ``error``, ``time``."""
        with self._lock:
            return [dict(r) for r in self.state.app.tokens.log]

    def robots(self, client_id: str | None = None) -> list[dict[str, Any]]:
        """The application's robots as registered (keys upper-cased), by ``CODE``."""
        with self._lock:
            return [copy.deepcopy(r) for r in self._app(client_id).robots.values()]

    def bindings(self) -> list[dict[str, Any]]:
        """Every ``event.bind`` registration of installed applications, by id."""
        with self._lock:
            return [b.as_dict() for b in self.state.app.bindings]

    def offline_queue(self) -> list[dict[str, Any]]:
        """Every offline record (``event.offline.list`` shape plus ``CLIENT_ID``/``CONNECTOR``), by ``ID``."""
        with self._lock:
            return [{**r.view(listing=True), "CLIENT_ID": r.client_id, "CONNECTOR": r.connector}
                    for r in sorted(self.state.app.offline.records, key=lambda r: r.id)]

    def robot_runs(self) -> list[dict[str, Any]]:
        """Every ``run_robot`` workflow with its status and answer."""
        with self._lock:
            return [w.as_dict() for w in self.state.app.workflows.values()]

    def robot_answers(self) -> list[dict[str, Any]]:
        """``bizproc.event.send`` answers to ``run_robot`` runs: ``workflow_id``, ``code``, ``deal_id``,
        ``EVENT_TOKEN``, ``RETURN_VALUES``, ``LOG_MESSAGE``, ``DATE``."""
        with self._lock:
            return [{"workflow_id": w.workflow_id, "code": w.code, "deal_id": w.deal_id, **w.answer}
                    for w in self.state.app.workflows.values() if w.answer is not None]
