"""Pure: what the relay tells people — robot answers, comments and notifications, integrator alerts.

The payload of a ``notify`` job is built here and turned into batch commands here.  On the
*source* portal: ``crm.timeline.comment.add`` with lower-case ``fields``
(``api-reference/crm/timeline/comments/crm-timeline-comment-add.md``), ``im.notify.system.add`` to
the deal's responsible user (``api-reference/chats/notifications/im-notify-system-add.md``) and one
``bizproc.event.send`` per application-robot call (``api-reference/bizproc/bizproc-robot/bizproc-event-send.md``):
every robot call gets exactly one answer, whatever the job's end (relayed, unchanged, skipped,
failed), so no workflow waits forever.  On the *target* portal (``"portal": "target"``): an alert to
the integrator's user when a job dies.

Each payload lists the parts already sent under ``done``, so a retried notify job never repeats one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from relay.portal.protocol import Command

_DONE = {
    "created": "[b24relay] Sent to ESB: created deal #{target} on {portal}.",
    "updated": "[b24relay] ESB deal #{target} on {portal} updated.",
}
_FAILED = "[b24relay] Could not send this deal to ESB: {reason}"
TARGET = "target"


def _payload(*, deal_id: str, text: str, deal: Mapping[str, Any] | None, comment: bool,
             notify_user: bool, ref: str = "") -> dict[str, Any]:
    """The comment and the responsible user's notification carrying ``text``; the comment ends with
    the ``ref`` marker that lets a retry find it (:func:`comment_sent`)."""
    payload: dict[str, Any] = {"deal_id": deal_id, "done": []}
    if comment:
        payload["comment"] = f"{text} [ref {ref}]" if ref else text
        if ref:
            payload["ref"] = ref
    user = str((deal or {}).get("ASSIGNED_BY_ID") or "")
    if notify_user and user:
        title = str((deal or {}).get("TITLE") or f"#{deal_id}")
        payload["notify"] = {"user_id": user, "message": f"Deal «{title}» (#{deal_id}): {text[11:]}"}
    return payload


def _robots(payload: dict[str, Any], tokens: Sequence[str], status: str, target_deal_id: str,
            message: str, url: str = "") -> dict[str, Any]:
    """Add one robot answer per ``event_token`` (return values ``target_deal_id``, ``target_deal_url``,
    ``status``, ``message`` and ``result``; the message also goes to the workflow log).  A failure is
    ``status`` ``error`` (``result`` stays ``failed``, as workflows written before had it)."""
    if tokens:
        payload["robots"] = {"tokens": list(tokens), "log_message": message, "return_values": {
            "target_deal_id": target_deal_id, "target_deal_url": url, "result": status,
            "status": "error" if status == "failed" else status, "message": message}}
    return payload


def deal_url(portal: str, deal_id: str) -> str:
    """The target deal's page (``https://<portal>/crm/deal/details/<id>/``), or ``""``."""
    return f"https://{portal}/crm/deal/details/{deal_id}/" if portal and deal_id else ""


def success_notice(
    *, action: str, deal: Mapping[str, Any], target_deal_id: str, target_portal: str,
    event_tokens: Sequence[str] = (), comment: bool = True, notify_user: bool = True, ref: str = "", note: str = "",
) -> dict[str, Any]:
    """Payload telling the source that its deal was created/updated on the target (``note``: a line more)."""
    text = _DONE.get(action, _DONE["updated"]).format(target=target_deal_id, portal=target_portal)
    text += f"\n{note}" if note else ""
    payload = _payload(deal_id=str(deal.get("ID", "")), text=text, deal=deal, comment=comment,
                       notify_user=notify_user, ref=ref)
    return _robots(payload, event_tokens, action, target_deal_id, text, deal_url(target_portal, target_deal_id))


def skipped_files(skipped: Sequence[Any]) -> str:
    """The line telling the partner which files were not sent (``relay.sync.files.Skipped``), or ``""``."""
    if not skipped:
        return ""
    return "Not sent: " + "; ".join(f"{s.name} ({s.reason})" for s in skipped) + "."


def robot_notice(*, deal_id: str, event_tokens: Sequence[str], status: str, message: str,
                 target_deal_id: str = "") -> dict[str, Any] | None:
    """Payload answering only the robots (a deal not relayed, or relayed unchanged); None without robots."""
    if not event_tokens:
        return None
    return _robots({"deal_id": deal_id, "done": []}, event_tokens, status, target_deal_id,
                   f"[b24relay] {message}")


def failure_notice(
    *, deal_id: str, reason: str, deal: Mapping[str, Any] | None, event_tokens: Sequence[str] = (),
    comment: bool = False, ref: str = "",
) -> dict[str, Any] | None:
    """Payload telling the source why its deal could not be relayed: the robots always, a comment on
    the deal when ``comment``; None when there is nothing to send.  The partner's manager gets no
    notification: failures go to the integrator (:func:`alert`)."""
    text = _FAILED.format(reason=reason[:1500])
    payload = _payload(deal_id=deal_id, text=text, deal=deal, comment=comment, notify_user=False, ref=ref)
    _robots(payload, event_tokens, "failed", "", text)
    return payload if ("comment" in payload or "robots" in payload) else None


def alert(*, user_id: str, source_id: str, deal_id: str, reason: str, quiet: float) -> dict[str, Any]:
    """Payload of an integrator alert on the target portal: a job died."""
    minutes = int(quiet // 60)
    what = f"Deal #{deal_id}" if ":" not in deal_id else f"1C record {deal_id}"  # 1C keys: kind:number:year
    text = (f"[b24relay] {what} of source {source_id} could not be relayed: {reason[:1200]}\n"
            f"Fix the cause, then `relay replay --dead --source {source_id}`."
            + (f" Further failures of this source in the next {minutes} min are not notified "
               "(see `relay jobs --status dead`)." if minutes else ""))
    return {"portal": TARGET, "deal_id": deal_id, "done": [], "alert": {"user_id": user_id, "message": text}}


def comment_pending(payload: Mapping[str, Any]) -> bool:
    """True when the payload has a marked comment not yet known to be sent."""
    return "comment" in payload and "comment" not in payload.get("done", []) and bool(payload.get("ref"))


def comment_sent(payload: Mapping[str, Any], comments: Sequence[str]) -> bool:
    """True when one of the deal's ``comments`` is this payload's (it carries its ``ref`` marker)."""
    marker = f"[ref {payload.get('ref')}]"
    return bool(payload.get("ref")) and any(marker in text for text in comments)


def commands(payload: Mapping[str, Any], prefix: str) -> dict[str, tuple[str, Command]]:
    """Batch commands for the parts of a notify payload not sent yet: ``{name: (part, command)}``,
    names ending in ``prefix``; ``part`` goes into ``done`` once its command succeeded."""
    done = set(payload.get("done", []))
    out: dict[str, tuple[str, Command]] = {}
    if "comment" in payload and "comment" not in done:
        out[f"comment{prefix}"] = ("comment", Command("crm.timeline.comment.add", {"fields": {
            "ENTITY_ID": payload["deal_id"], "ENTITY_TYPE": "deal", "COMMENT": payload["comment"]}}))
    for part in ("notify", "alert"):
        if part in payload and part not in done:
            out[f"{part}{prefix}"] = (part, Command("im.notify.system.add", {
                "USER_ID": payload[part]["user_id"], "MESSAGE": payload[part]["message"]}))
    for n, (token, values, log) in enumerate(_robot_answers(payload)):
        if f"robot:{n}" not in done and not (n == 0 and "robot" in done):  # "robot": the old one-token form
            params: dict[str, Any] = {"EVENT_TOKEN": token, "RETURN_VALUES": values}
            if log:
                params["LOG_MESSAGE"] = log
            out[f"robot{n}{prefix}"] = (f"robot:{n}", Command("bizproc.event.send", params))
    return out


def _robot_answers(payload: Mapping[str, Any]) -> list[tuple[str, Any, str | None]]:
    robots = payload.get("robots")
    if isinstance(robots, Mapping):
        return [(t, robots.get("return_values", {}), robots.get("log_message")) for t in robots.get("tokens", [])]
    old = payload.get("robot")  # notify jobs stored before robots were merged (one token)
    if isinstance(old, Mapping) and old.get("event_token"):
        return [(old["event_token"], old.get("return_values", {}), old.get("log_message"))]
    return []
