"""The mutable data of one portal (deals, rows, comments, ...); no locking, no HTTP.

:class:`relay.emulator.portal.Portal` owns one :class:`PortalState` and guards it with its lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from relay.emulator.config import PortalConfig
from relay.emulator.core import not_found
from relay.emulator.values import parse_tz


@dataclass
class PortalState:
    """Deals and everything hanging off them, plus id counters and pending change events."""

    config: PortalConfig
    tz: timezone = field(init=False)
    deals: dict[int, dict[str, Any]] = field(default_factory=dict)
    rows: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    comments: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    event_sends: list[dict[str, Any]] = field(default_factory=list)
    event_tokens: set[str] = field(default_factory=set)
    #: ``(event code, deal id)`` produced by writes, drained by the portal to fire bound handlers
    changes: list[tuple[str, int]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tz = parse_tz(self.config.timezone)
        self.counters.setdefault("deal", self.config.first_deal_id - 1)

    def next_id(self, kind: str) -> int:
        """The next id of ``kind`` (``deal``, ``row``, ``comment``, ``notify``, ...)."""
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return self.counters[kind]

    def now(self) -> datetime:
        """Current time in the portal's timezone, whole seconds (Bitrix stores seconds)."""
        return datetime.now(self.tz).replace(microsecond=0)

    def deal(self, deal_id: int) -> dict[str, Any]:
        """The stored deal or the legacy ``Not found`` error — ``crm-deal-get.md``."""
        record = self.deals.get(deal_id)
        if record is None:
            raise not_found()
        return record

    def stages(self, category: int) -> list[str]:
        """Stage ids of a configured category (empty list when unknown)."""
        return self.config.categories.get(category, [])
