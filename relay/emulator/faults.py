"""Switchable faults: rate-limit/time-limit rejections, 5xx, slow, dropped and lost replies.

Error codes and statuses — ``limits.md`` (503 ``QUERY_LIMIT_EXCEEDED``, 429
``OPERATION_TIME_LIMIT``), ``_includes/system-errors.md`` (500 ``INTERNAL_SERVER_ERROR``).
Not thread-safe by itself: the portal's lock guards a :class:`FaultBook`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: kinds that act on a whole HTTP request (a batch counts as one request)
REQUEST_KINDS = frozenset({
    "query_limit", "operation_time_limit", "server_error", "timeout", "drop", "lost_reply",
})
#: kinds that act on one command inside a batch
COMMAND_KINDS = frozenset({"command_error"})
KINDS = REQUEST_KINDS | COMMAND_KINDS


@dataclass
class Fault:
    """One injected fault; ``times`` < 0 means "every matching request, until cleared"."""

    kind: str
    method: str | None = None
    times: int = 1
    opts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(KINDS)}")
        if self.times == 0:
            raise ValueError("times must be >= 1 (or negative for 'always')")
        self.method = self.method.lower() if self.method else None

    def matches(self, methods: Iterable[str]) -> bool:
        """True when the fault has no method or names one of ``methods``."""
        return self.method is None or self.method in methods

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the control API."""
        return {"kind": self.kind, "method": self.method, "times": self.times, **self.opts}


class FaultBook:
    """Pending faults, consumed in the order they were injected."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        """Queue a fault behind the ones already pending."""
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    def pending(self) -> list[Fault]:
        """The faults still waiting, oldest first."""
        return list(self._faults)

    def _take(self, kinds: frozenset[str], methods: tuple[str, ...]) -> Fault | None:
        for fault in self._faults:
            if fault.kind in kinds and fault.matches(methods):
                if fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def take_request(self, method: str, inner: Iterable[str] = ()) -> Fault | None:
        """Consume the first request-level fault matching ``method`` or a batch's inner methods."""
        return self._take(REQUEST_KINDS, (method, *inner))

    def take_command(self, method: str) -> Fault | None:
        """Consume the first ``command_error`` fault matching one batch command's method."""
        return self._take(COMMAND_KINDS, (method,))
