"""Several worker processes on PostgreSQL, and SIGKILL crash safety (acceptance 2 and 3 of issue 4)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.relayenv import ROWS, RelayEnv, start, stop

pytestmark = pytest.mark.e2e
RELAY = str(Path(sys.executable).with_name("relay"))
NO_SWEEP = "sweep: {enabled: false}\n"


def spawn_worker(env: RelayEnv, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([RELAY, "worker", "--threads", "1"], env=env.process_env(),
                            stdout=subprocess.DEVNULL, stderr=open(log, "ab"))


def settled(env: RelayEnv) -> bool:
    counts = env.store.counts()
    return not any(counts.get(k, {}).get(s) for k in ("sync", "notify") for s in ("pending", "running"))


def wait_settled(env: RelayEnv, expect_deals: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if settled(env) and len(env.target.deals()) >= expect_deals:
            return
        time.sleep(0.2)
    raise AssertionError(f"not settled: {env.store.counts()}, {len(env.target.deals())} target deals")


def assert_exactly_once(env: RelayEnv, deal_ids: list[int]) -> None:
    deals = env.target.deals()
    stamps = Counter(d["UF_CRM_SOURCE_DEAL"].rsplit(":", 1)[1] for d in deals)
    duplicates = {k: n for k, n in stamps.items() if n > 1}
    missing = {str(d) for d in deal_ids} - set(stamps)
    assert not duplicates and not missing, f"duplicates {duplicates}, missing {sorted(missing)[:10]}"
    for deal in deals:
        rows = env.target.rows(int(deal["ID"]))
        assert [(r["PRODUCT_ID"], r["PRODUCT_NAME"], r["QUANTITY"]) for r in rows] == [
            (301, ROWS[0]["PRODUCT_NAME"], ROWS[0]["QUANTITY"]), (0, ROWS[1]["PRODUCT_NAME"], ROWS[1]["QUANTITY"])]


def test_four_worker_processes_on_postgresql_relay_each_deal_once(tmp_path: Path, postgres_url: str) -> None:
    env = start(tmp_path, rate=100.0, burst=5000, batch_size=10, database_url=postgres_url,
                extra=NO_SWEEP)
    workers = [spawn_worker(env, tmp_path / "workers.log") for _ in range(4)]
    try:
        deals = [env.new_deal(TITLE=f"Deal {i}") for i in range(100)]
        events = [d for d in deals for _ in range(5)]
        random.Random(7).shuffle(events)
        with ThreadPoolExecutor(8) as pool:  # 500 events, many arriving while their deal's job runs
            statuses = list(pool.map(lambda d: env.event(d)[0], events))
        assert statuses == [200] * 500
        wait_settled(env, 100, 90)
        assert_exactly_once(env, deals)
        assert env.store.jobs(status="dead", limit=5) == []
        by_outcome = Counter(j.outcome for j in env.store.jobs(kind="sync", limit=1000))
        assert by_outcome["created"] == 100
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(timeout=60) for w in workers]
        stop(env)
    assert codes == [0, 0, 0, 0]  # SIGTERM: current round finished, clean exit


def test_sigkill_at_random_moments_never_duplicates_or_loses(tmp_path: Path, postgres_url: str) -> None:
    extra = NO_SWEEP
    env = start(tmp_path, rate=100.0, burst=5000, batch_size=5, database_url=postgres_url, extra=extra)
    cfg = env.config_path.read_text().replace("lease_seconds: 30", "lease_seconds: 5").replace(
        "max_attempts: 5", "max_attempts: 100")
    env.config_path.write_text(cfg)
    for portal in (env.source, env.target):
        portal.inject("timeout", delay=0.04, times=-1)  # every request takes a while: kills land mid-flight
    log = tmp_path / "workers.log"
    workers = [spawn_worker(env, log) for _ in range(3)]
    kills = 0
    try:
        deals = [env.new_deal(TITLE=f"Deal {i}") for i in range(200)]
        sender_done = threading.Event()

        def send() -> None:
            for i, deal_id in enumerate(deals):
                env.event(deal_id)
                if i % 3 == 0:
                    env.event(deals[i // 2])  # duplicates of earlier deals
                time.sleep(0.02)
            sender_done.set()

        threading.Thread(target=send, daemon=True).start()
        rng = random.Random(11)
        while kills < 30 or not sender_done.is_set():
            time.sleep(rng.uniform(0.05, 0.3))
            victim = rng.randrange(len(workers))
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait(10)
            kills += 1
            workers[victim] = spawn_worker(env, log)
        wait_settled(env, 200, 120)
        assert_exactly_once(env, deals)
        assert env.store.jobs(kind="sync", status="dead", limit=5) == []
        retried = [j for j in env.store.jobs(kind="sync", limit=2000) if j.attempts > 1 or j.status == "merged"]
        assert retried, "no kill interrupted a job: the test proved nothing"
        commented = {int(c["ENTITY_ID"]) for c in env.source.comments()}
        assert set(deals) <= commented
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=60)
        stop(env)
    assert kills >= 30
