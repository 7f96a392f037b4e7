"""Application sources: the robot and event bindings made after install, and the offline event queue.

* **Set-up** (once per install, retried until it succeeds): the robot ``b24relay_send`` is added with
  ``bizproc.robot.add`` — or updated with ``bizproc.robot.update`` when a re-install finds it
  (``api-reference/bizproc/bizproc-robot/``) — with ``USE_SUBSCRIPTION=Y``, properties the managers fill
  in and the return values ``target_deal_id``, ``target_deal_url``, ``status``, ``message``; the deal
  events are bound as *offline* events with the relay's ``auth_connector`` (so the relay's own writes
  do not come back), and ``ONOFFLINEEVENT`` as an online event to the handler URL: the nudge that new
  items wait (``api-reference/events/event-bind.md``, ``offline-events.md``).
* **Offline queue**: ``event.offline.get`` with ``clear=0`` reserves up to 50 records under a
  ``process_id``; their deals are stored as jobs (durably) and only then ``event.offline.clear``ed —
  exactly those ``message_id``s; a record that names no deal is marked with ``event.offline.error``
  (``api-reference/events/event-offline-get.md``, ``event-offline-clear.md``, ``event-offline-error.md``).
  The portal keeps the latest state per deal, so a thousand edits are one record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from relay.config import SourceConfig
from relay.errors import ApiError, RelayError
from relay.portal.client import CONNECTOR, PortalClient

log = logging.getLogger(__name__)
ROBOT_CODE = "b24relay_send"
DEAL_EVENTS = ("ONCRMDEALADD", "ONCRMDEALUPDATE")
_DEAL_ID = re.compile(r"^[1-9][0-9]{0,18}$")


def robot_fields(handler: str, funnels: Mapping[str, str]) -> dict[str, Any]:
    """The robot's registration: a name managers understand, its settings and its return values."""
    options = dict(funnels) or {"": "—"}
    return {
        "HANDLER": handler,
        "AUTH_USER_ID": 1,
        "USE_SUBSCRIPTION": "Y",
        "NAME": {"ru": "Отправить в ESB", "ua": "Надіслати в ESB", "en": "Send to ESB"},
        "DESCRIPTION": {"ru": "Передаёт сделку с клиентом и товарами на портал ESB",
                        "ua": "Передає угоду з клієнтом і товарами на портал ESB",
                        "en": "Sends the deal with its client and products to the ESB portal"},
        "PROPERTIES": {
            "funnel": {"Name": {"ru": "Воронка ESB", "ua": "Воронка ESB", "en": "ESB funnel"}, "Type": "select",
                       "Options": options, "Required": "N"},
            "responsible": {"Name": {"ru": "Ответственный в ESB", "ua": "Відповідальний в ESB",
                                     "en": "Responsible in ESB"}, "Type": "user", "Required": "N"},
            "note": {"Name": {"ru": "Примечание", "ua": "Примітка", "en": "Note"}, "Type": "text", "Required": "N"},
        },
        "RETURN_PROPERTIES": {
            "target_deal_id": {"Name": {"ru": "ID сделки в ESB", "ua": "ID угоди в ESB", "en": "ESB deal ID"},
                               "Type": "int"},
            "target_deal_url": {"Name": {"ru": "Ссылка на сделку в ESB", "ua": "Посилання на угоду в ESB",
                                         "en": "ESB deal link"}, "Type": "string"},
            "status": {"Name": {"ru": "Статус", "ua": "Статус", "en": "Status"}, "Type": "string"},
            "message": {"Name": {"ru": "Сообщение", "ua": "Повідомлення", "en": "Message"}, "Type": "text"},
        },
        "DOCUMENT_TYPE": ["crm", "CCrmDocumentDeal", "DEAL"],
    }


def set_up(client: PortalClient, source: SourceConfig, handler: str, funnels: Mapping[str, str],
           deletes: bool) -> None:
    """Register (or update) the robot and bind the events on an installed portal; raises on failure."""
    fields = robot_fields(handler, funnels)
    codes = client.call("bizproc.robot.list")
    if isinstance(codes, list) and ROBOT_CODE in codes:
        client.call("bizproc.robot.update", {"CODE": ROBOT_CODE, "FIELDS": fields}, write=True)
    else:
        client.call("bizproc.robot.add", {"CODE": ROBOT_CODE, **fields}, write=True)
    events = [*DEAL_EVENTS, *(["ONCRMDEALDELETE"] if deletes else [])]
    for event in events:
        _bind(client, {"event": event, "event_type": "offline", "auth_connector": CONNECTOR})
    _bind(client, {"event": "ONOFFLINEEVENT", "handler": handler, "event_type": "online",
                   "options": {"minTimeout": 1}})
    log.info("source %s: robot %s registered, %s bound offline", source.id, ROBOT_CODE, ", ".join(events))


def _bind(client: PortalClient, params: Mapping[str, Any]) -> None:
    try:
        client.call("event.bind", dict(params), write=True)
    except ApiError as exc:  # a re-install finds its bindings: "Handler already binded"
        if "already" not in exc.description.lower():
            raise


def drain(client: PortalClient, enqueue: Callable[[Sequence[tuple[str, str]]], None], *, limit: int = 50,
          rounds: int = 20) -> int:
    """Move the portal's offline events into the queue; returns how many deals were stored."""
    stored = 0
    for _ in range(rounds):
        answer = client.call("event.offline.get", {"clear": 0, "limit": limit, "auth_connector": CONNECTOR},
                             write=True)
        events = answer.get("events") if isinstance(answer, Mapping) else None
        process = answer.get("process_id") if isinstance(answer, Mapping) else None
        if not events or not process:
            return stored
        calls, good, bad = [], [], []
        for item in events:
            deal = _deal_of(item)
            message = str(item.get("MESSAGE_ID") or "") if isinstance(item, Mapping) else ""
            if deal is None:
                bad.append(message)
            else:
                calls.append((deal, str(item.get("EVENT_NAME") or "OFFLINE").upper()))
                good.append(message)
        if calls:
            enqueue(calls)  # durably stored before the portal forgets them
            stored += len(calls)
        if bad:
            client.call("event.offline.error", {"process_id": process, "message_id": [m for m in bad if m]},
                        write=True)
        if good:
            client.call("event.offline.clear", {"process_id": process, "message_id": good}, write=True)
        if len(events) < limit:
            return stored
    return stored


def _deal_of(item: Any) -> str | None:
    if not isinstance(item, Mapping) or str(item.get("EVENT_NAME") or "").upper() not in (
            *DEAL_EVENTS, "ONCRMDEALDELETE"):
        return None
    data = item.get("EVENT_DATA")
    fields = data.get("FIELDS") if isinstance(data, Mapping) else None
    deal = str(fields.get("ID") or "") if isinstance(fields, Mapping) else ""
    return deal if _DEAL_ID.match(deal) else None


def funnels(target: PortalClient) -> dict[str, str]:
    """The target's live deal funnels for the robot's "ESB funnel" setting (id -> name)."""
    try:
        answer = target.call("crm.category.list", {"entityTypeId": 2})
    except RelayError as exc:
        log.warning("could not list the target's funnels for the robot settings: %s", exc)
        return {}
    items = answer.get("categories") if isinstance(answer, Mapping) else None
    return {str(c.get("id")): str(c.get("name")) for c in items or [] if isinstance(c, Mapping)}
