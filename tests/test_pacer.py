"""The leaky bucket, on a fake clock."""

from relay.portal.pacer import Pacer


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


def test_after_503_rate_halves_then_recovers_gradually() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=2.0, burst=10, margin=0, recovery=0.05, clock=clock, wall=clock, sleep=clock.sleep)
    for _ in range(10):
        pacer.acquire()
    pacer.penalize()
    assert pacer.factor == 0.5 and pacer.rejections == 1
    start = clock.now
    for _ in range(4):
        pacer.acquire()
    slowed = (clock.now - start) / 4
    assert slowed > 0.5 * 1.5  # clearly slower than the nominal 0.5 s per request
    clock.now += 20  # quiet for a while: full rate again
    for _ in range(10):  # use up what drained meanwhile
        pacer.acquire()
    assert pacer.factor == 1.0
    start = clock.now
    for _ in range(10):
        pacer.acquire()
    assert abs((clock.now - start) / 10 - 0.5) < 0.01


def test_shared_by_threads_never_exceeds_the_bucket() -> None:
    import threading
    import time

    pacer = Pacer(rate=200.0, burst=20, margin=0)
    stamps: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(15):
            pacer.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    # replay the stamps through Bitrix24's own bucket: it must never overflow
    level, last = 0.0, stamps[0]
    for t in stamps:
        level = max(0.0, level - (t - last) * 200.0) + 1
        last = t
        assert level <= 20 + 1e-6
