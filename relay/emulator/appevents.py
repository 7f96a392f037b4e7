"""Application event handlers: ``event.bind``/``unbind``/``get``, ``event.offline.*``, and where changes go.

* All of them work only with application authorization; through an inbound webhook Bitrix24 answers
  403 ``WRONG_AUTH_TYPE`` — ``api-reference/events/event-bind.md``, ``event-get.md``,
  ``event-offline-get.md`` ("works only in the context of application authorization"); the code and its
  text "Current authorization type is denied for this method" are the ``rest`` module's
  ``AuthTypeException`` (the docs list ``WRONG_AUTH_TYPE`` with 403 for other app-only methods, e.g.
  ``settings/interactivity/push-and-pull/pull-application-push-add.md``).
* ``event.bind`` (``event``, ``handler``, ``auth_type``, ``event_type`` online|offline, ``auth_connector``,
  ``options[minTimeout]``) returns ``true``; unknown event 400 ``ERROR_EVENT_NOT_FOUND`` "Event not found";
  a second identical binding "Unable to set event handler" (``api-reference/events/test-handler.md``; the
  ``ERROR_CORE`` code and the tail ": Handler already binded" are UNVERIFIED).  ``event.unbind`` returns
  ``{"count": n}``; ``event.get`` the list — ``event-unbind.md``, ``event-get.md``.  The binding's source
  key is the ``auth_connector`` of the ``event.bind`` call itself (``rest`` module source).
* A deal change reaches: every online binding (POST, form-encoded, ``auth`` with a fresh access token of
  the acting user or ``auth_type`` — ``api-reference/events/index.md``, ``_includes/auth-params-in-events.md``;
  no ``refresh_token``, which Bitrix24 sends only for some events, UNVERIFIED); every offline binding's
  queue, except the queue whose ``auth_connector`` the changing call carried ("Bitrix24 will not record in
  the queue the change initiated by the application itself" — ``offline-events.md``); and, when a queue
  got records, each ``ONOFFLINEEVENT`` online binding of that application, at most once per
  ``options[minTimeout]`` seconds (default 1; 0 = once per call) with empty ``data`` and a
  ``refresh_token`` — ``api-reference/events/on-offline-event.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from relay.emulator.appstate import AppBinding, Caller, Delivery, InstalledApp, check_callback
from relay.emulator.core import EmuError, Reply
from relay.emulator.oauth import LOCAL_STATUS, SERVER_ENDPOINT, lifetime_seconds
from relay.emulator.state import PortalState
from relay.emulator.values import intval, php_str

Handler = Callable[[PortalState, Mapping[str, Any]], Reply]

#: events an application can bind here, with the scope each needs ("" = any application);
#: the emulator fires the deal events and ``ONOFFLINEEVENT``/``ONAPPUNINSTALL``
KNOWN_EVENTS = {
    "ONCRMDEALADD": "crm", "ONCRMDEALUPDATE": "crm", "ONCRMDEALDELETE": "crm", "ONCRMDEALMOVETOCATEGORY": "crm",
    "ONAPPINSTALL": "", "ONAPPUNINSTALL": "", "ONOFFLINEEVENT": "",
}


def wrong_auth_type() -> EmuError:
    """403 ``WRONG_AUTH_TYPE`` for an app-only method called through a webhook (see the module docstring)."""
    return EmuError(403, "WRONG_AUTH_TYPE", "Current authorization type is denied for this method")


def argument_null(name: str) -> EmuError:
    """400 ``ERROR_ARGUMENT`` "Argument '<NAME>' is null or empty" — the text
    ``api-reference/entity/entities/entity-add.md`` shows for the same ``rest`` module exception."""
    return EmuError(400, "ERROR_ARGUMENT", f"Argument '{name}' is null or empty")


def argument(text: str) -> EmuError:
    """400 ``ERROR_ARGUMENT`` with the ``rest`` module's message (texts UNVERIFIED)."""
    return EmuError(400, "ERROR_ARGUMENT", text)


def app_of(state: PortalState) -> tuple[InstalledApp, Caller]:
    """The calling application, or 403 ``WRONG_AUTH_TYPE``."""
    app = state.app.installed(state.caller.client_id)
    if app is None:
        raise wrong_auth_type()
    return app, state.caller


def _upper(params: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).upper(): v for k, v in params.items()}


def _event_type(query: Mapping[str, Any]) -> str:
    kind = php_str(query.get("EVENT_TYPE")).strip().lower() or "online"
    if kind not in ("online", "offline"):
        raise argument("Value must be one of {online|offline}")
    return kind


def _bind_call(state: PortalState, params: Mapping[str, Any]) -> tuple[Any, Any, dict[str, Any], str, str]:
    """What ``event.bind`` and ``event.unbind`` both read: the app, the caller, the upper-cased query, the
    event (``ERROR_ARGUMENT`` when empty) and its type."""
    app, caller = app_of(state)
    query = _upper(params)
    event = php_str(query.get("EVENT")).strip().upper()
    if not event:
        raise argument_null("EVENT")
    return app, caller, query, event, _event_type(query)


def event_bind(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``event.bind`` — ``api-reference/events/event-bind.md``."""
    app, caller, query, event, kind = _bind_call(state, params)
    handler = php_str(query.get("HANDLER")).strip()
    user = intval(query.get("AUTH_TYPE"))
    if kind == "offline":
        handler, user = "", 0
    elif not handler:
        raise argument_null("HANDLER")
    if handler:
        check_callback(handler, app)
    scope = KNOWN_EVENTS.get(event)
    if scope is None or (scope and scope not in app.scopes()):
        raise EmuError(400, "ERROR_EVENT_NOT_FOUND", "Event not found")
    if kind == "offline" and event == "ONOFFLINEEVENT":
        raise argument("Offline event cannot be registered for this event.")
    raw = query.get("OPTIONS")
    options = {"minTimeout": intval(raw["minTimeout"])} if (
        event == "ONOFFLINEEVENT" and isinstance(raw, Mapping) and "minTimeout" in raw) else {}
    same = (app.client_id, event, handler, caller.connector, user)
    if any((b.client_id, b.event, b.handler, b.connector, b.user_id) == same for b in state.app.bindings):
        raise EmuError(400, "ERROR_CORE", "Unable to set event handler: Handler already binded")
    state.app.next_binding += 1
    state.app.bindings.append(AppBinding(state.app.next_binding, app.client_id, event, handler, user,
                                         caller.connector, options))
    return Reply(True)


def event_unbind(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``event.unbind``: ``{"count": n}`` — ``api-reference/events/event-unbind.md``."""
    app, caller, query, event, kind = _bind_call(state, params)
    handler = "" if kind == "offline" else php_str(query.get("HANDLER")).strip()
    if kind == "online" and not handler:
        raise argument_null("HANDLER")

    def hit(b: AppBinding) -> bool:
        if (b.client_id, b.event, b.handler) != (app.client_id, event, handler):
            return False
        if kind == "offline":
            return b.connector == caller.connector
        return "AUTH_TYPE" not in query or b.user_id == intval(query["AUTH_TYPE"])

    kept = [b for b in state.app.bindings if not hit(b)]
    count = len(state.app.bindings) - len(kept)
    state.app.bindings = kept
    return Reply({"count": count})


def event_get(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``event.get``: the application's bindings by id — ``api-reference/events/event-get.md``."""
    app, _ = app_of(state)
    return Reply([b.as_event_get() for b in state.app.bindings if b.client_id == app.client_id])


# -- the offline queue (relay/emulator/offline.py) -----------------------------------------------------


def _lower(params: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in params.items()}


def _process_id(query: Mapping[str, Any]) -> str | None:
    value = query.get("process_id")
    return None if value is None else php_str(value).strip()


def offline_get(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``event.offline.get`` — ``api-reference/events/event-offline-get.md``."""
    app, caller = app_of(state)
    query = _lower(params)
    limit = intval(query["limit"]) if "limit" in query else 50
    if limit <= 0:
        raise argument("Value must be positive integer")
    clear = intval(query["clear"]) != 0 if "clear" in query else True
    return Reply(state.app.offline.get(
        app.client_id, caller.connector, flt=query.get("filter"), order=query.get("order"), limit=limit,
        clear=clear, process_id=_process_id(query), errors=intval(query.get("error")) == 1, tz=state.tz))


def _message_ids(value: Any) -> list[str]:
    items = list(value.values()) if isinstance(value, Mapping) else value
    if not isinstance(items, list) or any(len(php_str(m).strip()) != 32 for m in items):
        raise argument("Value must be array of MESSAGE_ID values")
    return [php_str(m).strip() for m in items]


def offline_clear(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``event.offline.clear`` (``process_id``, optional ``message_id``/``id`` arrays) — ``event-offline-clear.md``."""
    app, caller = app_of(state)
    query = _lower(params)
    process = _process_id(query)
    if process is None:
        raise argument_null("PROCESS_ID")
    ids: list[int] | None = None
    message_ids = _message_ids(query["message_id"]) if "message_id" in query else None
    if message_ids is None and "id" in query:
        raw = query["id"]
        items = list(raw.values()) if isinstance(raw, Mapping) else raw
        if not isinstance(items, list) or any(intval(i) <= 0 for i in items):
            raise argument("Value must be array of integers")
        ids = [intval(i) for i in items]
    state.app.offline.clear(app.client_id, caller.connector, process, ids=ids, message_ids=message_ids)
    return Reply(True)


def offline_error(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``event.offline.error`` (``process_id``, ``message_id`` array) — ``event-offline-error.md``."""
    app, caller = app_of(state)
    query = _lower(params)
    process = _process_id(query)
    if process is None:
        raise argument_null("PROCESS_ID")
    message_ids = _message_ids(query.get("message_id"))
    if message_ids:
        state.app.offline.mark_error(app.client_id, caller.connector, process, message_ids)
    return Reply(True)


def offline_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``event.offline.list``: 50-record pages with ``total``/``next`` — ``event-offline-list.md``."""
    app, caller = app_of(state)
    query = _lower(params)
    start = max(0, intval(query.get("start")))
    rows, total = state.app.offline.listing(app.client_id, caller.connector, flt=query.get("filter"),
                                            order=query.get("order"), start=start, tz=state.tz)
    more = start + len(rows) if start + len(rows) < total else None
    return Reply(rows, total=total, next=more)


# -- where a deal change goes ----------------------------------------------------------------------------


def event_body(state: PortalState, app: InstalledApp, binding: AppBinding, data: Any, user_id: int, *,
               refresh: bool) -> dict[str, Any]:
    """An event posted to an application's online handler, ``auth`` in the documented order."""
    now = time.time()
    pair = state.app.tokens.issue(app.client_id, user_id, state.config.token_lifetime, now, refresh=refresh)
    auth: dict[str, Any] = {
        "access_token": pair.access_token, "expires_in": str(lifetime_seconds(state.config)), "scope": app.scope,
        "domain": state.config.domain, "server_endpoint": SERVER_ENDPOINT, "status": LOCAL_STATUS,
        "client_endpoint": f"https://{state.config.domain}/rest/", "member_id": state.config.member_id,
    }
    if pair.refresh_token is not None:
        auth["refresh_token"] = pair.refresh_token
    auth["application_token"] = app.application_token
    return {"event": binding.event, "event_handler_id": str(binding.id), "data": data, "ts": str(int(now)),
            "auth": auth}


def _fields(state: PortalState, event: str, deal_id: int) -> dict[str, Any]:
    """``data[FIELDS]``: the id; a funnel move adds ``CATEGORY_ID``/``STAGE_ID`` —
    ``api-reference/crm/deals/events/on-crm-deal-move-to-category.md``."""
    fields: dict[str, Any] = {"ID": deal_id}
    deal = state.deals.get(deal_id)
    if event == "ONCRMDEALMOVETOCATEGORY" and deal is not None:
        fields.update({"CATEGORY_ID": deal.get("CATEGORY_ID"), "STAGE_ID": deal.get("STAGE_ID")})
    return fields


def route_changes(state: PortalState, changes: list[tuple[str, int]], caller: Caller) -> list[Delivery]:
    """Queue ``changes`` for offline bindings and return the online calls they cause."""
    out: list[Delivery] = []
    queued: set[str] = set()
    for event, deal_id in changes:
        fields = _fields(state, event, deal_id)
        for binding in state.app.bindings:
            app = state.app.installed(binding.client_id)
            if app is None or binding.event != event:
                continue
            if binding.offline:
                if binding.connector and binding.connector == caller.connector and caller.client_id == app.client_id:
                    continue  # the application's own write, marked with this queue's source key
                state.app.offline.add(app.client_id, binding.connector, event, {"FIELDS": fields},
                                      {"user_id": caller.user_id}, state.now())
                queued.add(app.client_id)
            else:
                body = event_body(state, app, binding, {"FIELDS": {k: php_str(v) for k, v in fields.items()}},
                                  binding.user_id or caller.user_id, refresh=False)
                out.append(Delivery(binding.handler, event, deal_id, app.client_id, body))
    return out + _pings(state, queued)


def _pings(state: PortalState, clients: set[str]) -> list[Delivery]:
    """``ONOFFLINEEVENT`` to the online bindings of applications whose queue just got records."""
    out: list[Delivery] = []
    now = time.time()
    for binding in state.app.bindings:
        app = state.app.installed(binding.client_id)
        if app is None or binding.client_id not in clients or binding.event != "ONOFFLINEEVENT" or binding.offline:
            continue
        wait = binding.options.get("minTimeout", 1)
        if wait > 0 and now - binding.last_ping < wait:
            continue  # "the next will not be sent until the specified number of seconds has passed"
        binding.last_ping = now
        body = event_body(state, app, binding, [], binding.user_id or app.user_id, refresh=True)
        out.append(Delivery(binding.handler, binding.event, None, app.client_id, body))
    return out


HANDLERS: dict[str, Handler] = {
    "event.bind": event_bind,
    "event.unbind": event_unbind,
    "event.get": event_get,
    "event.offline.get": offline_get,
    "event.offline.clear": offline_clear,
    "event.offline.error": offline_error,
    "event.offline.list": offline_list,
}
