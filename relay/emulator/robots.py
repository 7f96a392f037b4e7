"""Application robots: ``bizproc.robot.add/update/list/delete``, running one, and ``bizproc.event.send``.

Documented — ``api-reference/bizproc/bizproc-robot/index.md``, ``bizproc-robot-add.md``,
``bizproc-robot-update.md``, ``bizproc-robot-list.md``, ``bizproc-robot-delete.md``,
``bizproc-event-send.md``, ``tutorials/bizproc/setting-robot.md``:

* application context only: through a webhook ``ACCESS_DENIED`` "Application context required"; the
  ``bizproc`` module throws ``Bitrix\\Rest\\AccessException("Application context required")``, which is
  HTTP 403 with the text prefixed "Access denied! " (``rest`` module source; the robot pages list the
  bare text, ``api-reference/crm/automation/triggers/crm-automation-trigger-list.md`` the prefixed one);
* ``CODE`` unique per application, ``a-z A-Z 0-9 . - _``; ``HANDLER`` on the application's domain
  (:func:`relay.emulator.appstate.check_callback`); ``NAME`` required; ``PROPERTIES``/``RETURN_PROPERTIES``
  objects keyed ``^[a-z][a-z0-9_]*$`` (case-insensitive) with a ``Name`` and a ``Type`` among the basic
  ones; ``USE_SUBSCRIPTION`` waits unless exactly ``N``; errors ``ERROR_ACTIVITY_VALIDATION_FAILURE``,
  ``ERROR_ACTIVITY_ALREADY_INSTALLED``, ``ERROR_ACTIVITY_NOT_FOUND`` (HTTP 400).  Message texts follow the
  ``bizproc`` module source ("Activity or Robot already installed!", "Wrong property key (x)!"; the docs
  translate "Robot" as "Automation rule" and write ``<x>``);
* ``bizproc.event.send`` with an invalid or spent ``EVENT_TOKEN``: 403 ``ACCESS_DENIED`` "Access denied!".
  A run's token is accepted once, and only when the robot waits (``USE_SUBSCRIPTION`` not ``N``) —
  that a second send is refused is UNVERIFIED (the workflow has moved on).

What a run posts to ``HANDLER``: protocol notes §3.2 (:func:`relay.emulator.sender.app_robot_payload`)
with real tokens of ``AUTH_USER_ID`` (or the portal's admin) issued for the application.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from relay.emulator import other_methods, sender
from relay.emulator.appstate import InstalledApp, Workflow, check_callback
from relay.emulator.core import EmuError, Reply, param
from relay.emulator.oauth import lifetime_seconds
from relay.emulator.state import PortalState
from relay.emulator.values import intval, iso, php_str

Handler = Callable[[PortalState, Mapping[str, Any]], Reply]
_CODE = re.compile(r"^[a-z0-9.\-_]+$", re.IGNORECASE)
_KEY = re.compile(r"^[a-z][a-z0-9_]*$", re.IGNORECASE)
TYPES = frozenset({"bool", "date", "datetime", "double", "file", "int", "select", "string", "text", "user"})
FIELDS = ("HANDLER", "AUTH_USER_ID", "USE_SUBSCRIPTION", "NAME", "DESCRIPTION", "PROPERTIES",
          "RETURN_PROPERTIES", "DOCUMENT_TYPE", "FILTER", "USE_PLACEMENT", "PLACEMENT_HANDLER")


def _fail(text: str) -> EmuError:
    return EmuError(400, "ERROR_ACTIVITY_VALIDATION_FAILURE", text)


def _app(state: PortalState) -> InstalledApp:
    app = state.app.installed(state.caller.client_id)
    if app is None:
        raise EmuError(403, "ACCESS_DENIED", "Access denied! Application context required")
    return app


def _prepared(data: Any, keep: bool = False) -> Any:
    """Upper-case keys like the ``bizproc`` module, except property codes and ``Options`` keys."""
    if isinstance(data, list):
        return [_prepared(v) for v in data]
    if not isinstance(data, Mapping):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key) if keep else str(key).upper()
        out[name] = _prepared(value, name in ("PROPERTIES", "RETURN_PROPERTIES", "OPTIONS"))
    return out


def _code(value: Any) -> str:
    code = php_str(value).strip()
    if not code:
        raise _fail("Empty activity code!")
    if not _CODE.match(code):
        raise _fail("Wrong activity code!")
    return code


def _properties(value: Any) -> None:
    items = dict(enumerate(value)) if isinstance(value, list) else value
    if not isinstance(items, Mapping):
        raise _fail("Wrong properties array!")
    for key, spec in items.items():
        if not _KEY.match(str(key)):
            raise _fail(f"Wrong property key ({key})!")
        if not isinstance(spec, Mapping) or not spec.get("NAME"):
            raise _fail(f"Empty property NAME ({key})!")
        kind = php_str(spec.get("TYPE") or "string")
        if kind not in TYPES:
            raise _fail(f"Unsupported property type ({kind})!")


def _validate(data: Mapping[str, Any], app: InstalledApp, *, update: bool) -> None:
    if "HANDLER" in data or not update:
        check_callback(php_str(data.get("HANDLER")), app)
    if ("NAME" in data or not update) and not data.get("NAME"):
        raise _fail("Empty activity NAME!")
    for key in ("PROPERTIES", "RETURN_PROPERTIES"):
        if key in data and data[key] not in ("", None):
            _properties(data[key])
    if "DOCUMENT_TYPE" in data:
        doc = data["DOCUMENT_TYPE"]
        if not isinstance(doc, list) or len(doc) != 3 or not all(php_str(p) for p in doc):
            raise _fail("Wrong activity DOCUMENT_TYPE!")
    if "FILTER" in data and not isinstance(data["FILTER"], (Mapping, list)):
        raise _fail("Wrong activity FILTER!")


def robot_add(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``bizproc.robot.add`` — ``api-reference/bizproc/bizproc-robot/bizproc-robot-add.md``."""
    app = _app(state)
    data = _prepared(params)
    if not data:
        raise _fail("Empty data!")
    code = _code(data.get("CODE"))
    _validate(data, app, update=False)
    if code in app.robots:
        raise EmuError(400, "ERROR_ACTIVITY_ALREADY_INSTALLED", "Activity or Robot already installed!")
    robot = {k: data[k] for k in FIELDS if k in data}
    robot.update({"CODE": code, "AUTH_USER_ID": intval(data.get("AUTH_USER_ID"))})
    app.robots[code] = robot
    return Reply(True)


def robot_update(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``bizproc.robot.update`` (``CODE``, ``FIELDS``) — ``bizproc-robot-update.md``."""
    app = _app(state)
    data = _prepared(params)
    code = _code(data.get("CODE"))
    fields = data.get("FIELDS")
    if code not in app.robots:
        raise EmuError(400, "ERROR_ACTIVITY_NOT_FOUND", "Activity or Robot not found!")
    changes = {k: v for k, v in fields.items() if k in FIELDS} if isinstance(fields, Mapping) else {}
    if not changes:
        raise _fail("No fields to update")
    _validate(changes, app, update=True)
    if "AUTH_USER_ID" in changes:
        changes["AUTH_USER_ID"] = intval(changes["AUTH_USER_ID"])
    app.robots[code].update(changes)
    return Reply(True)


def robot_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``bizproc.robot.list``: the application's robot codes — ``bizproc-robot-list.md``."""
    return Reply(list(_app(state).robots))


def robot_delete(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``bizproc.robot.delete`` (``CODE``) — ``bizproc-robot-delete.md``."""
    app = _app(state)
    code = _code(_prepared(params).get("CODE"))
    if app.robots.pop(code, None) is None:
        raise EmuError(400, "ERROR_ACTIVITY_NOT_FOUND", "Activity or Robot not found!")
    return Reply(True)


def event_send(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``bizproc.event.send``: a run's token once; other tokens as before (:mod:`relay.emulator.other_methods`)."""
    token = php_str(param(params, "EVENT_TOKEN")).strip()
    workflow = state.app.workflows.get(token)
    if workflow is None:
        return other_methods.event_send(state, params)
    if workflow.answer is not None or not workflow.use_subscription:
        raise EmuError(403, "ACCESS_DENIED", "Access denied!")
    values = param(params, "RETURN_VALUES") or {}
    workflow.answer = {
        "EVENT_TOKEN": token,
        "RETURN_VALUES": dict(values) if isinstance(values, Mapping) else values,
        "LOG_MESSAGE": php_str(param(params, "LOG_MESSAGE")) or None,
        "DATE": iso(state.now()),
    }
    state.event_sends.append(dict(workflow.answer))
    return Reply(True)


@dataclass(frozen=True)
class RobotRun:
    """What :meth:`relay.emulator.app.AppMixin.run_robot` did: the handler's reply and the run's ids."""

    status: int
    body: str
    workflow_id: str
    event_token: str

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the control API."""
        return {"status": self.status, "body": self.body, "workflow_id": self.workflow_id,
                "event_token": self.event_token}


def start(state: PortalState, app: InstalledApp, code: str, deal_id: int, properties: Mapping[str, Any],
          timeout_duration: int) -> tuple[str, dict[str, Any], Workflow]:
    """Record a run of robot ``code`` on a deal; returns ``(handler URL, form body, workflow)``."""
    robot = app.robots.get(code)
    if robot is None:
        raise ValueError(f"application {app.client_id} has no robot {code!r} (robots: {sorted(app.robots)})")
    if int(deal_id) not in state.deals:
        raise ValueError(f"deal {deal_id} does not exist")
    declared = robot.get("PROPERTIES") or {}
    declared = dict(enumerate(declared)) if isinstance(declared, list) else declared
    unknown = sorted(set(properties) - {str(k) for k in declared})
    if unknown:
        raise ValueError(f"robot {code!r} has no properties {unknown} (declared: {sorted(map(str, declared))})")
    values: dict[str, Any] = {}
    for key, spec in declared.items():
        if str(key) in properties:
            values[str(key)] = properties[str(key)]
        elif "DEFAULT" in spec:
            values[str(key)] = spec["DEFAULT"]
        elif php_str(spec.get("REQUIRED")).upper() == "Y":
            raise ValueError(f"robot {code!r} needs property {key!r}")
    waits = php_str(robot.get("USE_SUBSCRIPTION")).upper() != "N"
    now = time.time()
    pair = state.app.tokens.issue(app.client_id, robot.get("AUTH_USER_ID") or state.config.user_id,
                                  state.config.token_lifetime, now)
    workflow_id = sender.new_workflow_id()
    token = sender.new_event_token(workflow_id)
    body = sender.app_robot_payload(state.config, int(deal_id), app.application_token, token, code=code,
                                    workflow_id=workflow_id, properties=values or None, ts=int(now))
    body["use_subscription"] = "Y" if waits else "N"
    body["timeout_duration"] = str(int(timeout_duration))
    body["auth"].update({"access_token": pair.access_token, "expires": str(int(pair.expires)),
                         "expires_in": str(lifetime_seconds(state.config)), "scope": app.scope,
                         "user_id": str(pair.user_id), "refresh_token": pair.refresh_token})
    workflow = Workflow(workflow_id, token, app.client_id, code, int(deal_id), values, waits)
    state.app.workflows[token] = workflow
    return php_str(robot.get("HANDLER")), body, workflow


HANDLERS: dict[str, Handler] = {
    "bizproc.robot.add": robot_add,
    "bizproc.robot.update": robot_update,
    "bizproc.robot.list": robot_list,
    "bizproc.robot.delete": robot_delete,
    "bizproc.event.send": event_send,
}
