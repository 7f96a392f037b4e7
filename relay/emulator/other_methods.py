"""REST methods outside ``crm.deal.*``: timeline comments, notifications, bizproc (users: :mod:`users`).

Doc paths are next to each handler.  ``bizproc.event.send`` accepts only tokens the portal
issued (``send_app_robot``) or a test registered (``Portal.register_event_token``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from relay.emulator.core import EmuError, Reply, param
from relay.emulator.state import PortalState
from relay.emulator.values import intval, iso, php_str, strict_id

Handler = Callable[[PortalState, Mapping[str, Any]], Reply]


def comment_add(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.timeline.comment.add``: only lower-case ``fields`` (crm 23.100.0+) —
    ``api-reference/crm/timeline/comments/crm-timeline-comment-add.md``."""
    fields = params.get("fields")
    if not isinstance(fields, Mapping):
        other = next((k for k in params if str(k).lower() in ("fields", "arfields")), None)
        hint = f"; '{other}' is not accepted, the key must be lower-case 'fields'" if other else ""
        raise EmuError(400, "100", f"Required parameter 'fields' is not provided{hint}")
    entity_type = php_str(fields.get("ENTITY_TYPE")).lower()
    deal_id = strict_id(fields.get("ENTITY_ID"))
    owners = {"deal": state.deals, "company": state.companies, "contact": state.contacts,
              "dynamic_31": state.invoices}  # ENTITY_TYPE: deal, lead, contact, company, dynamic_<id>
    if entity_type not in owners or deal_id is None or deal_id not in owners[entity_type]:
        raise EmuError(400, "OWNER_NOT_FOUND", "Owner of the element not found")
    text = php_str(fields.get("COMMENT"))
    if not text.strip():
        raise EmuError(400, "INVALID_ARG_VALUE", "Empty comment")
    comment_id = state.next_id("comment")
    author = intval(fields.get("AUTHOR_ID")) or state.config.user_id
    state.comments.append({
        "ID": comment_id, "ENTITY_ID": deal_id, "ENTITY_TYPE": entity_type, "COMMENT": text,
        "AUTHOR_ID": author, "CREATED": iso(state.now()), "FILES": fields.get("FILES") or [],
    })
    return Reply(comment_id)


def comment_list(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``crm.timeline.comment.list`` filtered by ``ENTITY_ID``/``ENTITY_TYPE`` —
    ``api-reference/crm/timeline/comments/crm-timeline-comment-list.md``."""
    flt = param(params, "filter") or {}
    flt = flt if isinstance(flt, Mapping) else {}
    found = [
        c for c in state.comments
        if ("ENTITY_ID" not in flt or intval(flt["ENTITY_ID"]) == c["ENTITY_ID"])
        and ("ENTITY_TYPE" not in flt or php_str(flt["ENTITY_TYPE"]).lower() == c["ENTITY_TYPE"])
    ]
    order = param(params, "order") or {}
    if isinstance(order, Mapping) and php_str(order.get("ID", "ASC")).upper() == "DESC":
        found = sorted(found, key=lambda c: -int(c["ID"]))
    start = max(0, intval(param(params, "start")) or 0)  # pages of 50 — the method's doc
    page = found[start:start + 50]
    select = param(params, "select")
    keep = {php_str(s) for s in select} if isinstance(select, list) and select else None
    out = [{k: (str(v) if k in ("ID", "ENTITY_ID", "AUTHOR_ID") else v) for k, v in c.items()
            if keep is None or k in keep} for c in page]
    more = start + 50 if start + 50 < len(found) else None
    return Reply(out, total=len(found), next=more)


def _notify(kind: str) -> Handler:
    def handler(state: PortalState, params: Mapping[str, Any]) -> Reply:
        """``im.notify.*`` — ``api-reference/chats/notifications/im-notify-system-add.md``."""
        user = intval(param(params, "USER_ID"))
        if user <= 0:
            raise EmuError(400, "USER_ID_EMPTY", "Recipient ID not specified")
        message = php_str(param(params, "MESSAGE"))
        if not message.strip():
            raise EmuError(400, "MESSAGE_EMPTY", "Message text not provided")
        notify_id = state.next_id("notify")
        state.notifications.append({
            "ID": notify_id, "TYPE": kind, "USER_ID": user, "MESSAGE": message,
            "MESSAGE_OUT": php_str(param(params, "MESSAGE_OUT")) or None,
            "TAG": php_str(param(params, "TAG")) or None, "DATE": iso(state.now()),
        })
        return Reply(notify_id)

    return handler


def event_send(state: PortalState, params: Mapping[str, Any]) -> Reply:
    """``bizproc.event.send``: unknown token -> 403 ``ACCESS_DENIED`` —
    ``api-reference/bizproc/bizproc-robot/bizproc-event-send.md``."""
    token = php_str(param(params, "EVENT_TOKEN")).strip()
    if not token or token not in state.event_tokens:
        raise EmuError(403, "ACCESS_DENIED", "Access denied!")
    values = param(params, "RETURN_VALUES") or {}
    state.event_sends.append({
        "EVENT_TOKEN": token,
        "RETURN_VALUES": dict(values) if isinstance(values, Mapping) else values,
        "LOG_MESSAGE": php_str(param(params, "LOG_MESSAGE")) or None,
        "DATE": iso(state.now()),
    })
    return Reply(True)


HANDLERS: dict[str, Handler] = {
    "crm.timeline.comment.add": comment_add,
    "crm.timeline.comment.list": comment_list,
    "im.notify.system.add": _notify("system"),
    "im.notify.personal.add": _notify("personal"),
    "im.notify": _notify("user"),
    "bizproc.event.send": event_send,
}
