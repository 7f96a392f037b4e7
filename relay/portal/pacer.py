"""A client-side leaky bucket mirroring Bitrix24's per-portal request limit.

Bitrix24 adds 1 per request to a counter that drains ``rate`` per second and answers 503
``QUERY_LIMIT_EXCEEDED`` once the counter would exceed ``burst`` (2/s and 50, or 5/s and 250 on
Enterprise plans) — ``limits.md``.  The pacer keeps the same counter on our side, a little more
conservatively (``margin`` below the burst), so the portal never has to refuse us.

On a 503 we are evidently not alone on that portal and IP (Bitrix24 counts per portal *and* source
IP): the pacer treats the bucket as full and halves its own drain rate, then regains the nominal
rate gradually (``recovery`` of the nominal rate per second).  On 429 ``OPERATION_TIME_LIMIT`` it
holds that one method until ``time.operating_reset_at``.  One pacer per portal is shared by every
thread of a process.  Clock and sleep are injectable so tests need no real waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Pacer:
    """Blocks callers just long enough to stay within one portal's rate and burst."""

    def __init__(
        self,
        rate: float = 2.0,
        burst: int = 50,
        *,
        margin: int = 1,
        recovery: float = 0.05,
        floor: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.capacity = max(1, burst - margin)
        self.recovery, self.floor = recovery, floor
        self.factor = 1.0  # share of the nominal rate we allow ourselves (below 1 after a 503)
        self.rejections = 0
        self._clock, self._wall, self._sleep = clock, wall, sleep
        self._lock = threading.Lock()
        self._level = 0.0
        self._at = clock()
        self._held: dict[str, float] = {}  # method -> wall-clock time it may run again

    def _drain(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._at)
        self._level = max(0.0, self._level - elapsed * self.rate * self.factor)
        self.factor = min(1.0, self.factor + elapsed * self.recovery)
        self._at = now

    @property
    def _rate(self) -> float:
        return self.rate * self.factor

    def _wait_locked(self, methods: tuple[str, ...]) -> float:
        self._drain()
        wait = max(0.0, (self._level + 1 - self.capacity) / self._rate)
        for method in methods:
            held = self._held.get(method)
            if held is not None:
                wait = max(wait, held - self._wall())
        return wait

    def acquire(self, *methods: str) -> float:
        """Wait for a slot (and until none of ``methods`` is held), take it; return the wait."""
        waited = 0.0
        while True:
            with self._lock:
                wait = self._wait_locked(methods)
                if wait <= 1e-6:  # float residue: do not spin on sub-microsecond waits
                    for method in methods:
                        self._held.pop(method, None)
                    self._level += 1
                    return waited
            self._sleep(wait)
            waited += wait

    def penalize(self) -> None:
        """After a 503 QUERY_LIMIT_EXCEEDED: treat the bucket as full and halve our rate for a while."""
        with self._lock:
            self._drain()
            self._level = max(self._level, float(self.capacity))
            self.factor = max(self.floor, self.factor / 2)
            self.rejections += 1

    def hold(self, method: str, until: float) -> None:
        """After a 429 OPERATION_TIME_LIMIT: no ``method`` calls before wall time ``until``."""
        with self._lock:
            self._held[method] = max(until, self._held.get(method, 0.0))

    def wall_time(self) -> float:
        """The wall clock this pacer compares ``operating_reset_at`` with."""
        return self._wall()
