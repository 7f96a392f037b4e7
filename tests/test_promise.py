"""Issue 7: exactly once with slow targets and lost databases, nothing lost in outages, workers with
their own leases, an answer for every robot call — end to end through real HTTP and the emulator."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import update

from relay.boot import Relay, build
from relay.config import load_config
from relay.store import Store, jobs
from tests.relayenv import APP_TOKEN, RelayEnv, env_for, start, stop

pytestmark = pytest.mark.e2e


def commands(env: RelayEnv, method: str) -> int:
    """How many ``method`` commands the target received (inside batches or alone)."""
    return sum(r.inner.count(method) + (r.method == method) for r in env.target.requests)


def copies(env: RelayEnv) -> Counter[str]:
    return Counter(d["UF_CRM_SOURCE_DEAL"] for d in env.target.deals())


def drive(relays: list[Relay], until, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Run one worker of each relay, round after round, until ``until()`` holds."""
    workers = [r.worker(f"w{i}") for i, r in enumerate(relays)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for w in workers:
            w.run_once()
        if until():
            return
        time.sleep(0.05)
    raise AssertionError("did not finish in time")


def idle(relay: Relay) -> bool:
    counts = relay.store.counts()
    return not any(counts.get(k, {}).get(s) for k in ("sync", "notify") for s in ("pending", "running"))


def second_relay(env: RelayEnv, db: Path) -> Relay:
    """Another relay (its own database) on the same portals and configuration."""
    relay = build(load_config(env.config_path, env_for(env.source, env.target)), Store(f"sqlite:///{db}"))
    relay.pipeline.check_target()
    return relay


# --- 1. slow target -------------------------------------------------------------------------------


def test_creates_slower_than_the_client_timeout_never_duplicate(tmp_path: Path) -> None:
    # the write batch outlasts the 2 s client timeout and lands 1.5 s later; the retry comes at once
    env = start(tmp_path, create_margin=3)
    try:
        env.target.inject("timeout", method="crm.deal.add", times=1, delay=3.5)
        deals = [env.new_deal(TITLE=f"Slow {i}") for i in range(20)]
        for d in deals:
            env.event(d)
        started = time.monotonic()
        env.settle(timeout=60)
        time.sleep(max(0.0, started + 4.0 - time.monotonic()))  # the slow write has surely landed now
        assert len(env.target.deals()) == 20 and set(copies(env).values()) == {1}
        assert commands(env, "crm.deal.add") == 20  # never sent twice: found by the stamp after it landed
        said = [c["COMMENT"] for d in deals for c in env.source.comments(d)]
        assert len(said) == 20 and all("создана сделка" in c for c in said)  # found after a lost reply: created
    finally:
        stop(env)


def test_a_create_landing_after_the_wait_is_found_and_removed(tmp_path: Path) -> None:
    env = start(tmp_path, create_margin=0)
    try:
        env.target.inject("timeout", method="crm.deal.add", times=1, delay=4.0)
        deal_id = env.new_deal()
        env.event(deal_id)
        env.settle(timeout=30)  # after 2.5 s the relay concludes "not there" and creates again
        time.sleep(2.0)  # the slow create lands now: two copies
        assert copies(env)[f"{env.source.config.member_id}:{deal_id}"] == 2
        link = env.store.link("partner", str(deal_id))
        assert link is not None
        worker = env.relay.worker("checker")
        deadline = time.monotonic() + 10
        while worker.maybe_check_copies() == 0 and time.monotonic() < deadline:
            worker._next_copy_check = 0.0
            time.sleep(0.2)
        [kept] = env.target.deals()
        assert env.store.link("partner", str(deal_id)).target_deal_id == kept["ID"]  # type: ignore[union-attr]
        assert int(kept["ID"]) == min(int(i) for i in (kept["ID"], link.target_deal_id))
    finally:
        stop(env)


# --- 2. the local database is not the only truth --------------------------------------------------


def test_a_lost_database_or_a_second_relay_creates_nothing_again(tmp_path: Path) -> None:
    env = start(tmp_path)
    try:
        deals = [env.new_deal(TITLE=f"Deal {i}") for i in range(20)]
        for d in deals:
            env.event(d)
        env.settle()
        assert len(env.target.deals()) == 20
        # the database is gone: a fresh one on the same portals, the same deals again (one changed)
        env.source.update_deal(deals[0], {"TITLE": "Renamed"})
        fresh = second_relay(env, tmp_path / "fresh.db")
        for d in deals:
            fresh.store.enqueue_sync("partner", str(d), "ONCRMDEALUPDATE")
        env.target.reset_log()
        drive([fresh], lambda: idle(fresh))
        assert len(env.target.deals()) == 20 and set(copies(env).values()) == {1}
        assert commands(env, "crm.deal.add") == 0
        assert any(d["TITLE"].startswith("Renamed") for d in env.target.deals())
        assert commands(env, "crm.deal.list") == 1  # 20 stamps looked up in one command
        # two relays with separate databases working on the same new deals at the same time
        more = [env.new_deal(TITLE=f"More {i}") for i in range(20)]
        other = second_relay(env, tmp_path / "other.db")
        for relay in (env.relay, other):
            for d in more:
                relay.store.enqueue_sync("partner", str(d), "ONCRMDEALUPDATE")
        barrier = threading.Barrier(2)

        def run(relay: Relay) -> None:
            barrier.wait()
            drive([relay], lambda: idle(relay))

        threads = [threading.Thread(target=run, args=(r,)) for r in (env.relay, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(env.relay.config.target.settle_seconds)
        for relay in (env.relay, other):  # each checks its fresh creates for extra copies
            w = relay.worker("checker")
            w.maybe_check_copies()
        assert len(env.target.deals()) == 40 and set(copies(env).values()) == {1}
        kept = {d["UF_CRM_SOURCE_DEAL"]: d["ID"] for d in env.target.deals()}
        for relay in (env.relay, other):  # both relays now point at the surviving copy
            for d in more:
                link = relay.store.link("partner", str(d))
                assert link is not None and link.target_deal_id == kept[f"{env.source.config.member_id}:{d}"]
        other.store.close()
        fresh.store.close()
    finally:
        stop(env)


def test_a_target_without_the_link_field_is_refused_at_start(tmp_path: Path) -> None:
    from relay.errors import ConfigError
    from tests.relayenv import ROOT

    mapping = (ROOT / "config/mappings/partner.yaml").read_text().replace(
        "link_field: UF_CRM_SOURCE_DEAL", "link_field: UF_CRM_NO_SUCH_FIELD")
    with pytest.raises(ConfigError, match="UF_CRM_NO_SUCH_FIELD"):
        start(tmp_path, mapping=mapping)


# --- 3. outages use up no attempts -----------------------------------------------------------------


def test_a_503_storm_loses_nothing_and_tells_the_partner_nothing(tmp_path: Path) -> None:
    env = start(tmp_path, extra="notify: {integrator_user_id: 17}")
    try:
        deals = [env.new_deal(TITLE=f"Storm {i}") for i in range(100)]
        env.target.inject("query_limit", times=-1)
        for d in deals:
            env.event(d)
        worker = env.relay.worker("storm")
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            worker.run_once()
            time.sleep(0.02)
        attempts = [j.attempts for j in env.store.jobs(kind="sync", limit=200)]
        assert max(attempts) > env.relay.config.file.worker.max_attempts  # the storm outlasted them
        assert env.target.deals() == []
        env.target.clear_faults()
        env.settle(timeout=60)
        assert len(env.target.deals()) == 100 and set(copies(env).values()) == {1}
        assert {j.status for j in env.store.jobs(kind="sync", limit=200)} == {"done"}
        texts = [c["COMMENT"] for c in env.source.comments()]
        assert len(texts) == 100 and not any("Не удалось передать" in t for t in texts)
        assert env.target.notifications() == []  # no alert: nothing failed for good
    finally:
        stop(env)


def test_a_job_that_outlives_its_retry_time_gives_up_and_the_sweep_brings_it_back(relay_env: RelayEnv) -> None:
    env = relay_env
    deal_id = env.new_deal()
    env.event(deal_id)
    with env.store._tx() as conn:  # the job has been failing for four days
        conn.execute(update(jobs).values(created_at=time.time() - 4 * 86400))
    env.target.inject("server_error", times=-1)
    env.relay.worker("old").run_once()
    [job] = env.store.jobs(kind="sync")
    assert job.status == "dead" and job.outcome == "gave up" and "gave up after retrying" in (job.last_error or "")
    assert env.source.comments(deal_id) == []
    # other deals moved the sweep's watermark on; the dead deal is older than any sweep window
    for i in range(3):
        env.event(env.new_deal(TITLE=f"Later {i}"))
    env.target.clear_faults()
    env.settle()
    from relay.sweep import sweep_all

    sweep_all(env.relay.config, env.store, env.relay.pipeline.sources, force=True)  # sets the watermark
    [result] = sweep_all(env.relay.config, env.store, env.relay.pipeline.sources, force=True)
    assert result.queued == 1  # the deal whose job gave up, whatever its date
    env.settle()
    assert copies(env)[f"{env.source.config.member_id}:{deal_id}"] == 1


# --- 6. every worker its own lease ------------------------------------------------------------------


def test_worker_threads_have_their_own_lease_identity(relay_env: RelayEnv) -> None:
    owners = {relay_env.relay.worker().owner for _ in range(4)}
    assert len(owners) == 4


def test_four_worker_threads_with_a_short_lease_write_each_deal_once(tmp_path: Path) -> None:
    env = start(tmp_path, batch_size=1, lease_seconds=1)
    try:
        deals = [env.new_deal(TITLE=f"Lease {i}") for i in range(12)]
        for d in deals:
            env.event(d)
        env.settle()
        for d in deals:
            env.source.update_deal(d, {"TITLE": f"Changed {d}"})
        env.target.reset_log()
        # two writes outlast the 1 s lease while the other threads are free to take expired leases over
        env.target.inject("timeout", method="crm.deal.update", times=2, delay=1.8)
        stop_event = threading.Event()
        threads = env.relay.start_workers(4, stop_event)
        owners = set()
        try:
            for d in deals:
                env.event(d)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (
                    all(x["TITLE"].startswith("Changed") for x in env.target.deals()) and idle(env.relay)):
                with env.store.engine.connect() as conn:
                    owners |= {r[0] for r in conn.execute(jobs.select().with_only_columns(jobs.c.lease_owner))
                               if r[0]}
                time.sleep(0.05)
            time.sleep(1.0)
        finally:
            stop_event.set()
            for t in threads:
                t.join(timeout=30)
        assert commands(env, "crm.deal.update") == 12  # each deal written once
        assert len(owners) >= 2  # several workers really shared the work
    finally:
        stop(env)


# --- 8. every application-robot call gets exactly one answer ----------------------------------------


def test_every_robot_call_gets_exactly_one_answer(relay_env: RelayEnv) -> None:
    env = relay_env
    outside = env.new_deal(STAGE_ID="C1:NEW")
    status, _ = env.source.send_app_robot(env.handler, outside, APP_TOKEN, event_token="tok-outside")
    assert status == 200
    merged = env.new_deal()
    for token in ("tok-merged-1", "tok-merged-2"):  # both arrive before the worker runs: one job
        assert env.source.send_app_robot(env.handler, merged, APP_TOKEN, event_token=token)[0] == 200
    assert len(env.store.jobs(kind="sync")) == 2
    env.settle()
    env.source.send_app_robot(env.handler, merged, APP_TOKEN, event_token="tok-unchanged")
    env.settle()
    answers = {s["EVENT_TOKEN"]: s["RETURN_VALUES"] for s in env.source.event_sends()}
    assert sorted(answers) == ["tok-merged-1", "tok-merged-2", "tok-outside", "tok-unchanged"]
    assert len(env.source.event_sends()) == 4  # exactly one each
    assert answers["tok-outside"]["status"] == "skipped"
    assert answers["tok-merged-1"]["status"] == answers["tok-merged-2"]["status"] == "created"
    assert answers["tok-unchanged"]["status"] == "unchanged"
    [deal] = env.target.deals()
    assert answers["tok-unchanged"]["target_deal_id"] == deal["ID"] == answers["tok-merged-1"]["target_deal_id"]


def test_a_failed_robot_call_is_answered_with_the_reason(tmp_path: Path) -> None:
    from tests.relayenv import ROOT

    mapping = (ROOT / "config/mappings/partner.yaml").read_text().replace('"C3:NEW"', '"C3:NO_SUCH_STAGE"')
    env = start(tmp_path, mapping=mapping)
    try:
        deal_id = env.new_deal()
        env.source.send_app_robot(env.handler, deal_id, APP_TOKEN, event_token="tok-fail")
        env.settle()
        [sent] = env.source.event_sends()
        assert sent["RETURN_VALUES"]["status"] == "error" and "C3:NO_SUCH_STAGE" in sent["RETURN_VALUES"]["message"]
    finally:
        stop(env)


def test_a_linked_deal_gone_from_the_target_is_found_again_by_its_stamp_or_reported(relay_env: RelayEnv) -> None:
    env = relay_env
    deal_id = env.new_deal()
    env.event(deal_id)
    env.settle()
    [first] = env.target.deals()
    stamp = f"{env.source.config.member_id}:{deal_id}"
    # another relay kept its own copy, and this one's was deleted as the extra copy
    other = env.target.add_deal({"TITLE": "kept elsewhere", "UF_CRM_SOURCE_DEAL": stamp, "CATEGORY_ID": "3"})
    env.target.delete_deal(int(first["ID"]))
    env.source.update_deal(deal_id, {"TITLE": "Boiler v2"})
    env.event(deal_id)
    env.settle()
    [deal] = env.target.deals()
    assert deal["ID"] == str(other) and deal["TITLE"].startswith("Boiler v2")
    assert env.store.link("partner", str(deal_id)).target_deal_id == str(other)  # type: ignore[union-attr]
    # the ESB team deleted it: no copy is left, the job dies with the way out
    env.target.delete_deal(other)
    env.source.update_deal(deal_id, {"TITLE": "Boiler v3"})
    env.event(deal_id)
    env.settle()
    dead = env.store.jobs(kind="sync", status="dead")
    assert len(dead) == 1 and "relay unlink partner" in (dead[0].last_error or "")
    assert env.target.deals() == []
