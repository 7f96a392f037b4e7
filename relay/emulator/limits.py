"""The leaky-bucket request limit, per-method operating time and the ``time`` reply block.

Leaky bucket (counter +1 per request, drains ``rate``/s, over ``burst`` -> 503
``QUERY_LIMIT_EXCEEDED``) and operating time summed over ten one-minute buckets —
``limits.md``; ``time`` block keys — ``api-reference/data-types.md#time``.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from relay.emulator.values import iso

WINDOW = 600.0  # ten one-minute buckets — limits.md


class LeakyBucket:
    """Counter that grows by one per accepted request and drains at ``rate`` per second."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._level = 0.0
        self._stamp = clock()

    def _drain(self) -> None:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._stamp) * self.rate)
        self._stamp = now

    @property
    def level(self) -> float:
        """The counter after draining up to now."""
        self._drain()
        return self._level

    def try_acquire(self) -> bool:
        """Add one request unless that would push the counter over ``burst`` (then add nothing)."""
        self._drain()
        if self._level + 1 > self.burst:
            return False
        self._level += 1
        return True

    def refund(self) -> None:
        """Take back one request (a rejection must not count)."""
        self._level = max(0.0, self._level - 1)

    def reset(self) -> None:
        """Empty the bucket."""
        self._level = 0.0
        self._stamp = self._clock()


class OperatingLedger:
    """Seconds of execution per method over the last ten minutes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._spent: dict[str, deque[tuple[float, float]]] = defaultdict(deque)

    def _trim(self, method: str) -> deque[tuple[float, float]]:
        entries = self._spent[method]
        cutoff = self._clock() - WINDOW
        while entries and entries[0][0] < cutoff:
            entries.popleft()
        return entries

    def add(self, method: str, seconds: float) -> None:
        """Charge ``seconds`` of execution to ``method``."""
        self._trim(method).append((self._clock(), seconds))

    def operating(self, method: str) -> float:
        """Accumulated seconds of ``method`` in the window (``time.operating``)."""
        return sum(s for _, s in self._trim(method))

    def reset_at(self, method: str) -> int:
        """Unix time when the oldest charge leaves the window (``time.operating_reset_at``)."""
        entries = self._trim(method)
        return int((entries[0][0] if entries else self._clock()) + WINDOW)


def time_block(start: float, finish: float, tz: timezone, *, processing: float | None = None,
               operating: float | None = None, reset_at: int | None = None) -> dict[str, Any]:
    """The ``time`` object of a reply (``operating*`` keys only when given)."""
    block: dict[str, Any] = {
        "start": start,
        "finish": finish,
        "duration": finish - start,
        "processing": finish - start if processing is None else processing,
        "date_start": iso(datetime.fromtimestamp(start, tz)),
        "date_finish": iso(datetime.fromtimestamp(finish, tz)),
    }
    if reset_at is not None:
        block["operating_reset_at"] = reset_at
    if operating is not None:
        block["operating"] = operating
    return block
