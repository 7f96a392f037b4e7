"""Recovery sweep and the admin API (acceptance 4 and 5 of issue 4)."""

from __future__ import annotations

import pytest
import requests

from relay.web.app import create_app, serve_in_thread
from tests.relayenv import RelayEnv

pytestmark = pytest.mark.e2e


def test_sweep_relays_deals_whose_events_were_lost_and_nothing_else(relay_env: RelayEnv) -> None:
    env = relay_env
    old = [env.new_deal(TITLE=f"Old {i}") for i in range(5)]
    for deal_id in old:
        env.event(deal_id)
    env.settle()
    assert len(env.target.deals()) == 5
    # the relay is down: 20 deals move to trigger stages, 3 others change outside them; no event arrives
    lost = [env.new_deal(TITLE=f"Lost {i}", STAGE_ID="C1:EXECUTING" if i % 2 else "C1:PREPARATION")
            for i in range(20)]
    for i in range(3):
        env.new_deal(TITLE=f"Not ready {i}", STAGE_ID="C1:NEW")
    env.target.reset_log()
    worker = env.relay.worker("after-restart")
    assert worker.maybe_sweep() == 20
    env.settle()
    titles = sorted(d["TITLE"].split(" (")[0] for d in env.target.deals())
    assert titles == sorted([f"Old {i}" for i in range(5)] + [f"Lost {i}" for i in range(20)])
    # one look-up of the 20 stamps, one batch created them; the 5 old ones were not touched
    assert env.target.count_requests() == 2
    assert {int(c["ENTITY_ID"]) for c in env.source.comments()} >= set(lost)  # every lost deal was told
    again = env.relay.worker("later")
    from relay.sweep import sweep_all

    results = sweep_all(env.relay.config, env.store, env.relay.pipeline.sources, force=True)
    assert [r.queued for r in results] == [0]  # nothing new since
    assert again.maybe_sweep() == 0  # not due again yet


def test_sweep_catches_a_funnel_move(relay_env: RelayEnv) -> None:
    env = relay_env
    deal_id = env.new_deal(STAGE_ID="NEW", CATEGORY_ID="0")  # funnel 0: not relayed
    env.event(deal_id)
    env.settle()
    assert env.target.deals() == []
    env.source.move_deal(deal_id, 1, "C1:PREPARATION")  # ONCRMDEALUPDATE does not fire for this
    from relay.sweep import sweep_all

    [result] = sweep_all(env.relay.config, env.store, env.relay.pipeline.sources, force=True)
    assert result.queued == 1
    env.settle()
    assert len(env.target.deals()) == 1


def test_admin_api_needs_its_token_and_replays_dead_jobs(relay_env: RelayEnv) -> None:
    env = relay_env
    token = "admin-sekret-token-42"
    server = serve_in_thread(create_app(env.relay.config, env.store, admin_token=token))
    base = f"http://127.0.0.1:{server.server_port}/admin"
    try:
        for method in ("crm.deal.list", "crm.deal.get"):  # the list read, then the one-by-one read
            env.source.inject("command_error", method=method, times=1, code="ACCESS_DENIED",
                              description="Access denied")
        deal_id = env.new_deal()
        env.event(deal_id)
        env.settle()
        [dead] = env.store.jobs(kind="sync", status="dead")
        assert requests.get(f"{base}/jobs", timeout=5).status_code == 401
        assert requests.get(f"{base}/jobs", headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 403
        assert requests.post(f"{base}/jobs/{dead.id}/replay", timeout=5).status_code == 401
        assert env.store.jobs(kind="sync", status="pending") == []  # the refused replay did nothing
        auth = {"Authorization": f"Bearer {token}"}
        listed = requests.get(f"{base}/jobs", params={"status": "dead"}, headers=auth, timeout=5).json()["jobs"]
        assert [j["id"] for j in listed] == [dead.id] and "ACCESS_DENIED" in listed[0]["last_error"]
        answer = requests.post(f"{base}/replay", json={"dead": True, "source": "partner"}, headers=auth, timeout=5)
        assert answer.status_code == 200 and answer.json()["replayed"][0]["job"] == dead.id
        env.settle()
        assert len(env.target.deals()) == 1
        assert requests.post(f"{base}/sweep", json={}, headers=auth, timeout=5).json()["ok"] is True
    finally:
        server.shutdown()


def test_admin_api_is_off_without_a_token(relay_env: RelayEnv) -> None:
    resp = requests.get(relay_env.url + "/admin/jobs", headers={"Authorization": "Bearer x"}, timeout=5)
    assert resp.status_code == 404


def test_sweep_pages_through_many_deals_in_two_requests(relay_env: RelayEnv) -> None:
    from relay.sweep import sweep_all

    env = relay_env
    lost = {env.new_deal(TITLE=f"Lost {i}") for i in range(130)}
    env.source.reset_log()
    [result] = sweep_all(env.relay.config, env.store, env.relay.pipeline.sources, force=True)
    assert result.seen == 130 and result.queued == 130
    assert env.source.count_requests() == 2  # page 1, then pages 2-3 in one batch
    assert {int(j.deal_id) for j in env.store.jobs(kind="sync", status="pending", limit=200)} == lost
