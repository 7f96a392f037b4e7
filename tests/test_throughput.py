"""Cross-deal batching and pacing through the emulator (acceptance of issue 3)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from relay.emulator import EmulatedPortal
from tests.relayenv import RelayEnv, start, stop

pytestmark = pytest.mark.e2e


def fire(env: RelayEnv, deal_ids: list[int]) -> None:
    for deal_id in deal_ids:
        status, body = env.event(deal_id)
        assert status == 200, body


def count_503(portal: EmulatedPortal) -> int:
    return portal.count_requests(status=503)


def test_a_burst_of_120_ready_jobs_takes_few_requests(relay_env: RelayEnv) -> None:
    env = relay_env
    deals = [env.new_deal(TITLE=f"Deal {i}") for i in range(120)]
    fire(env, deals)
    env.source.reset_log()
    env.target.reset_log()
    env.settle()
    assert len(env.target.deals()) == 120
    assert env.target.count_requests() <= 10  # 5 look-ups of 25 stamps, 5 batches of 25 creates + their rows
    assert env.source.count_requests() <= 10  # 5 reads + 5 comment/notification batches
    assert len(env.source.comments()) == 120 and len(env.source.notifications()) == 120
    stamps = [d["UF_CRM_SOURCE_DEAL"] for d in env.target.deals()]
    assert len(set(stamps)) == 120


def test_one_failing_command_only_retries_its_own_deal(relay_env: RelayEnv) -> None:
    env = relay_env
    deals = [env.new_deal(TITLE=f"Deal {i}") for i in range(5)]
    fire(env, deals)
    env.target.inject("command_error", method="crm.deal.add", times=1,
                      code="INTERNAL_SERVER_ERROR", description="Internal error")
    worker = env.relay.worker("w")
    worker.run_once()
    jobs = env.store.jobs(kind="sync")
    assert sorted(j.status for j in jobs) == ["done"] * 4 + ["pending"]
    failed = next(j for j in jobs if j.status == "pending")
    assert "INTERNAL_SERVER_ERROR" in (failed.last_error or "")
    assert len(env.target.deals()) == 4
    env.settle()
    assert len(env.target.deals()) == 5
    assert {d["UF_CRM_SOURCE_DEAL"].split(":")[1] for d in env.target.deals()} == {str(d) for d in deals}
    assert env.store.job(failed.id).attempts == 2
    assert all(j.attempts == 1 for j in env.store.jobs(kind="sync") if j.id != failed.id)


def run_workers(env: RelayEnv, count: int, until: float = 60.0) -> None:
    stop_evt = threading.Event()
    threads = env.relay.start_workers(count, stop_evt)
    try:
        deadline = time.monotonic() + until
        while time.monotonic() < deadline:
            counts = env.store.counts()
            if not any(counts.get(k, {}).get(s) for k in ("sync", "notify") for s in ("pending", "running")):
                break
            time.sleep(0.05)
    finally:
        stop_evt.set()
        env.relay.wake.set()
        for t in threads:
            t.join(10)


def test_pacer_keeps_steady_state_free_of_503_and_recovers_after_forced_ones(tmp_path: Path) -> None:
    # a tight bucket (burst 8, 40/s) so steady state is reached within a second
    env = start(tmp_path, rate=40.0, burst=8, batch_size=2)  # many small rounds: many requests
    try:
        deals = [env.new_deal(TITLE=f"Deal {i}") for i in range(60)]
        fire(env, deals)
        run_workers(env, 3)
        assert len(env.target.deals()) == 60
        assert count_503(env.source) == 0 and count_503(env.target) == 0
        steady = env.source.count_requests()
        assert steady >= 30  # the bucket really was exhausted many times over

        more = [env.new_deal(TITLE=f"More {i}") for i in range(20)]
        env.source.inject("query_limit", times=3)
        fire(env, more)
        started = time.monotonic()
        run_workers(env, 3)
        assert len(env.target.deals()) == 80
        assert count_503(env.source) == 3
        pacer = env.relay.pipeline.sources["partner"].pacer
        assert pacer.rejections == 3
        assert time.monotonic() - started < 20
    finally:
        stop(env)


def test_a_round_reads_many_deals_per_command(relay_env: RelayEnv) -> None:
    env = relay_env
    deals = [env.new_deal(TITLE=f"Many {i}") for i in range(25)]
    env.source.set_rows(deals[0], [{"PRODUCT_ID": 0, "PRODUCT_NAME": f"Row {i}", "PRICE": 1, "QUANTITY": 1}
                                   for i in range(60)])  # more rows than one page
    fire(env, deals)
    env.source.reset_log()
    env.settle()
    reads = [r for r in env.source.requests if "crm.deal.list" in r.inner or "crm.item.productrow.list" in r.inner]
    assert len(reads) == 2  # one batch for the deals and the first row pages, one for the rest of the rows
    assert reads[0].inner.count("crm.deal.list") == 1 and reads[0].inner.count("crm.item.productrow.list") == 1
    first = next(d for d in env.target.deals() if d["TITLE"].startswith("Many 0 "))
    assert len(env.target.rows(int(first["ID"]))) == 60
    others = [d for d in env.target.deals() if not d["TITLE"].startswith("Many 0 ")]
    assert len(others) == 24 and all(len(env.target.rows(int(d["ID"]))) == 2 for d in others)


def test_a_portal_refusing_the_list_read_is_read_one_by_one(relay_env: RelayEnv) -> None:
    env = relay_env
    deals = [env.new_deal(TITLE=f"Old portal {i}") for i in range(3)]
    env.source.inject("command_error", method="crm.item.productrow.list", times=1, code="",
                      description="Unknown method")  # a permanent refusal of the newer method
    fire(env, deals)
    env.settle()
    assert len(env.target.deals()) == 3
    assert all(len(env.target.rows(int(d["ID"]))) == 2 for d in env.target.deals())
    assert env.source.count_requests() >= 1 and any("crm.deal.productrows.get" in r.inner for r in env.source.requests)
