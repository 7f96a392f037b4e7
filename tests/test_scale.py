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
    have = {d["UF_CRM_SOURCE_DEAL"].rsplit(":", 1)[1] for d in env.target.deals()}
    missing = sorted({str(j.deal_id) for j in env.store.jobs(kind="sync", limit=5000)} - have)
    history = {m: [(j.id, j.status, j.outcome, j.attempts, j.trigger, (j.last_error or "")[:80])
                   for j in env.store.jobs(deal_id=m, limit=20)] for m in missing[:3]}
    links = {m: env.store.link("partner", m) for m in missing[:3]}
    raise AssertionError(f"not settled: {env.store.counts()}, {len(env.target.deals())} target deals; "
                         f"missing {missing[:10]}: {history} {links}")


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
        codes = stop_workers(workers)
        stop(env)
    assert codes == [0, 0, 0, 0]  # SIGTERM: current round finished, clean exit


def running_pids(env: RelayEnv) -> set[int]:
    """Pids of worker processes holding a lease right now (owner is host:pid:thread)."""
    from sqlalchemy import text

    with env.store.engine.connect() as conn:
        owners = conn.execute(text("SELECT lease_owner FROM jobs WHERE status = 'running'")).scalars().all()
    return {int(o.split(":")[1]) for o in owners if o and o.count(":") >= 2}


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> list[int]:
    """SIGTERM every worker process and wait for each; their exit codes."""
    for w in workers:
        w.send_signal(signal.SIGTERM)
    return [w.wait(timeout=60) for w in workers]


def sigkill_loop(env: RelayEnv, workers: list[subprocess.Popen[bytes]], log: Path, rng: random.Random,
                 kills: int, seconds: float) -> int:
    """SIGKILL a worker at a random moment inside a job, ``kills`` times (or for ``seconds``), each
    replaced by a new one; returns the number of kills."""
    done = 0
    deadline = time.monotonic() + seconds
    while done < kills and time.monotonic() < deadline:
        busy = running_pids(env) & {w.pid for w in workers}
        if not busy:
            time.sleep(0.02)
            continue
        time.sleep(rng.uniform(0.0, 0.3))  # a random moment inside the job
        pid = rng.choice(sorted(busy))
        victim = next(i for i, w in enumerate(workers) if w.pid == pid)
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait(10)
        done += 1
        workers[victim] = spawn_worker(env, log)
    return done


def test_sigkill_at_random_moments_never_duplicates_or_loses(tmp_path: Path, postgres_url: str) -> None:
    env = start(tmp_path, rate=100.0, burst=5000, batch_size=5, database_url=postgres_url, extra=NO_SWEEP)
    cfg = env.config_path.read_text().replace("lease_seconds: 30", "lease_seconds: 5").replace(
        "max_attempts: 5", "max_attempts: 100")
    env.config_path.write_text(cfg)
    for portal in (env.source, env.target):
        portal.inject("timeout", delay=0.1, times=-1)  # every request takes a while: kills land mid-flight
    log = tmp_path / "workers.log"
    workers = [spawn_worker(env, log) for _ in range(3)]
    kills = 0
    stop_sending = threading.Event()
    rng = random.Random(11)
    try:
        deals = [env.new_deal(TITLE=f"Deal {i}") for i in range(200)]

        def send() -> None:
            for i, deal_id in enumerate(deals):
                env.event(deal_id)
                if i % 3 == 0:
                    env.event(deals[i // 2])  # duplicates of earlier deals
                time.sleep(0.01)
            while not stop_sending.is_set():  # keep real work coming: partners edit relayed deals
                deal_id = rng.choice(deals)
                env.source.update_deal(deal_id, {"TITLE": f"Deal {deal_id} v{rng.randrange(1000)}"})
                env.event(deal_id)
                time.sleep(0.05)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        kills = sigkill_loop(env, workers, log, rng, 30, 180)
        stop_sending.set()
        sender.join(10)
        wait_settled(env, 200, 120)
        assert_exactly_once(env, deals)
        for deal in env.target.deals():  # the newest title of each deal arrived
            source_id = int(deal["UF_CRM_SOURCE_DEAL"].rsplit(":", 1)[1])
            assert deal["TITLE"] == f"{env.source.deal(source_id)['TITLE']} ({env.source.config.domain})"
        assert env.store.jobs(kind="sync", status="dead", limit=5) == []
        retried = [j for j in env.store.jobs(kind="sync", limit=5000) if j.attempts > 1 or j.status == "merged"]
        assert retried, "no kill interrupted a job: the test proved nothing"
        commented = {int(c["ENTITY_ID"]) for c in env.source.comments()}
        assert set(deals) <= commented
    finally:
        stop_sending.set()
        stop_workers(workers)
        stop(env)
    assert kills >= 30
