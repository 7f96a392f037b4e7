"""The leaky bucket, on a fake clock."""

from relay.pacer import Pacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_burst_then_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=2.0, burst=10, margin=0, clock=clock, wall=clock, sleep=clock.sleep)
    for _ in range(10):
        assert pacer.acquire() == 0.0
    waited = pacer.acquire()
    assert abs(waited - 0.5) < 1e-9  # one more request needs one drained slot at 2/s
    start = clock.now
    for _ in range(10):
        pacer.acquire()
    assert abs((clock.now - start) - 5.0) < 1e-6  # steady state: exactly the rate


def test_penalize_forces_backoff() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=2.0, burst=50, clock=clock, wall=clock, sleep=clock.sleep)
    pacer.penalize()
    assert pacer.acquire() > 0


def test_hold_method_until_reset() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=2.0, burst=50, clock=clock, wall=clock, sleep=clock.sleep)
    pacer.hold("crm.deal.list", clock.now + 30)
    assert pacer.acquire("crm.deal.get") == 0.0
    assert pacer.acquire("crm.deal.list") >= 30.0
    assert pacer.acquire("crm.deal.list") == 0.0
