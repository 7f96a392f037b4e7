"""Pure: what the relay tells the source portal — timeline comment, notification, robot return values.

The payload of a ``notify`` job is built here and turned into batch commands here:
``crm.timeline.comment.add`` with lower-case ``fields`` (``api-reference/crm/timeline/comments/crm-timeline-comment-add.md``),
``im.notify.system.add`` (``api-reference/chats/notifications/im-notify-system-add.md``) and, for
application robots, ``bizproc.event.send`` (``api-reference/bizproc/bizproc-robot/bizproc-event-send.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relay.b24 import Command

PARTS = ("comment", "notify", "robot")

_DONE = {
    "created": "[b24relay] Sent to ESB: created deal #{target} on {portal}.",
    "updated": "[b24relay] ESB deal #{target} on {portal} updated.",
}
_FAILED = "[b24relay] Could not send this deal to ESB: {reason}"


def _payload(*, deal_id: str, text: str, deal: Mapping[str, Any] | None, comment: bool,
             notify_user: bool) -> dict[str, Any]:
    """The comment and the responsible user's notification carrying ``text``."""
    payload: dict[str, Any] = {"deal_id": deal_id, "done": []}
    if comment:
        payload["comment"] = text
    user = str((deal or {}).get("ASSIGNED_BY_ID") or "")
    if notify_user and user:
        title = str((deal or {}).get("TITLE") or f"#{deal_id}")
        payload["notify"] = {"user_id": user, "message": f"Deal «{title}» (#{deal_id}): {text[11:]}"}
    return payload


def success_notice(
    *, action: str, deal: Mapping[str, Any], target_deal_id: str, target_portal: str,
    event_token: str | None, comment: bool = True, notify_user: bool = True,
) -> dict[str, Any]:
    """Payload telling the source that its deal was created/updated on the target."""
    text = _DONE.get(action, _DONE["updated"]).format(target=target_deal_id, portal=target_portal)
    payload = _payload(deal_id=str(deal.get("ID", "")), text=text, deal=deal, comment=comment,
                       notify_user=notify_user)
    if event_token:
        payload["robot"] = {"event_token": event_token,
                            "return_values": {"target_deal_id": target_deal_id, "result": action}}
    return payload


def failure_notice(
    *, deal_id: str, reason: str, deal: Mapping[str, Any] | None, event_token: str | None,
    comment: bool = True, notify_user: bool = True,
) -> dict[str, Any]:
    """Payload telling the source why its deal could not be relayed."""
    text = _FAILED.format(reason=reason[:1500])
    payload = _payload(deal_id=deal_id, text=text, deal=deal, comment=comment, notify_user=notify_user)
    if event_token:
        payload["robot"] = {"event_token": event_token,
                            "return_values": {"target_deal_id": "", "result": "failed"},
                            "log_message": text}
    return payload


def commands(payload: Mapping[str, Any], prefix: str) -> dict[str, Command]:
    """Batch commands for the parts of a notify payload not done yet, named ``<part><prefix>``."""
    done = set(payload.get("done", []))
    out: dict[str, Command] = {}
    if "comment" in payload and "comment" not in done:
        out[f"comment{prefix}"] = Command("crm.timeline.comment.add", {"fields": {
            "ENTITY_ID": payload["deal_id"], "ENTITY_TYPE": "deal", "COMMENT": payload["comment"]}})
    if "notify" in payload and "notify" not in done:
        out[f"notify{prefix}"] = Command("im.notify.system.add", {
            "USER_ID": payload["notify"]["user_id"], "MESSAGE": payload["notify"]["message"]})
    if "robot" in payload and "robot" not in done:
        robot = payload["robot"]
        params: dict[str, Any] = {"EVENT_TOKEN": robot["event_token"], "RETURN_VALUES": robot["return_values"]}
        if robot.get("log_message"):
            params["LOG_MESSAGE"] = robot["log_message"]
        out[f"robot{prefix}"] = Command("bizproc.event.send", params)
    return out
