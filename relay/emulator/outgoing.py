"""Portal-side wrappers for outgoing calls and "bound" handlers fired on deal changes.

Bitrix24 delivers each event once from a queue, in the background, and never re-sends —
``api-reference/events/index.md`` ("Event Limitations", "Features of Operation").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from relay.emulator import sender
from relay.emulator.config import PortalConfig
from relay.emulator.state import PortalState

log = logging.getLogger("relay.emulator")


@dataclass(frozen=True)
class Binding:
    """An outgoing webhook: handler URL, subscribed events, token, id, and whether REST writes fire."""

    handler_url: str
    events: frozenset[str]
    application_token: str
    handler_id: int
    include_rest: bool = False


class OutgoingMixin:
    """Sending events/robot calls for :class:`relay.emulator.portal.Portal`."""

    config: PortalConfig
    state: PortalState
    _lock: threading.RLock
    _bindings: list[Binding]
    _senders: list[threading.Thread]
    _deliveries: list[dict[str, Any]]

    def send_event(self, handler_url: str, event: str, deal_id: int, application_token: str | None = None,
                   *, encoding: str = "form", extra: Mapping[str, Any] | None = None,
                   handler_id: int = 1, timeout: float = 10.0) -> tuple[int, str]:
        """POST one event about ``deal_id`` to ``handler_url`` now; returns ``(status, body)``."""
        return sender.send_event(self.config, handler_url, event, deal_id, application_token,
                                 encoding=encoding, extra=extra, handler_id=handler_id, timeout=timeout)

    def send_robot(self, handler_url: str, deal_id: int, *, timeout: float = 10.0) -> tuple[int, str]:
        """Run the built-in "Webhook" automation rule for ``deal_id``."""
        return sender.send_robot(handler_url, deal_id, timeout=timeout)

    def send_app_robot(self, handler_url: str, deal_id: int, application_token: str | None = None,
                       event_token: str | None = None, code: str = "relay_deal",
                       properties: Mapping[str, Any] | None = None, *,
                       timeout: float = 10.0) -> tuple[int, str]:
        """Call an application robot handler; its ``event_token`` becomes valid for ``bizproc.event.send``."""
        token = event_token or sender.new_event_token(sender.new_workflow_id())
        self.register_event_token(token)
        return sender.send_app_robot(self.config, handler_url, deal_id, application_token, token,
                                     code=code, properties=properties, timeout=timeout)

    def register_event_token(self, token: str) -> None:
        """Accept ``token`` in ``bizproc.event.send`` from now on."""
        with self._lock:
            self.state.event_tokens.add(token)

    def bind_outgoing(self, handler_url: str, events: Iterable[str], application_token: str | None = None,
                      *, include_rest: bool = False) -> Binding:
        """Subscribe a handler: seeded user actions (and REST writes if ``include_rest``) fire events."""
        with self._lock:
            binding = Binding(handler_url, frozenset(e.upper() for e in events),
                              application_token or self.config.application_token,
                              handler_id=len(self._bindings) + 1, include_rest=include_rest)
            self._bindings.append(binding)
            return binding

    def unbind_all(self) -> None:
        """Remove every binding."""
        with self._lock:
            self._bindings.clear()

    def deliveries(self) -> list[dict[str, Any]]:
        """Events fired through bindings: handler, event, deal id, status (None: failed)."""
        with self._lock:
            return [dict(d) for d in self._deliveries]

    def _fire_changes(self, origin: str) -> None:
        """Drain pending changes and deliver them to matching bindings in background threads."""
        with self._lock:
            changes, self.state.changes = self.state.changes, []
            targets = [(b, event, deal_id) for event, deal_id in changes for b in self._bindings
                       if event in b.events and (origin == "user" or b.include_rest)]
            for binding, event, deal_id in targets:
                thread = threading.Thread(target=self._deliver, args=(binding, event, deal_id),
                                          name=f"emu-event-{self.config.domain}", daemon=True)
                self._senders = [t for t in self._senders if t.is_alive()]
                self._senders.append(thread)
                thread.start()

    def _deliver(self, binding: Binding, event: str, deal_id: int) -> None:
        status: int | None = None
        try:
            status, _ = sender.send_event(self.config, binding.handler_url, event, deal_id,
                                          binding.application_token, handler_id=binding.handler_id,
                                          timeout=5.0)
        except requests.RequestException as exc:  # no retry: Bitrix24 logs and forgets
            log.debug("event %s for deal %s not delivered: %s", event, deal_id, type(exc).__name__)
        with self._lock:
            self._deliveries.append({"handler_url": binding.handler_url, "event": event,
                                     "deal_id": deal_id, "status": status})

    def wait_deliveries(self, timeout: float = 5.0) -> None:
        """Block until background event deliveries have finished (or ``timeout`` passes)."""
        with self._lock:
            threads = list(self._senders)
        for thread in threads:
            thread.join(timeout)
