"""No loops (issue 8): a deal some relay created is never relayed back, and the relay's own comment
causes no target write."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.relayenv import ROOT, RelayEnv, start, stop

pytestmark = pytest.mark.e2e
EXAMPLE = (ROOT / "config/mappings/partner.yaml").read_text()


def test_a_deal_stamped_by_a_relay_is_not_relayed_back(relay_env: RelayEnv) -> None:
    env = relay_env
    copy = env.new_deal(ORIGINATOR_ID="b24relay:someportal", ORIGIN_ID="77")
    env.event(copy)
    env.settle()
    assert env.target.deals() == []
    [job] = env.store.jobs(kind="sync")
    assert job.status == "skipped" and "not relayed back" in (job.last_error or "")


def test_a_relayed_mark_field_stops_the_way_back(tmp_path: Path) -> None:
    env = start(tmp_path, mapping=EXAMPLE + "\nrelayed_marks: [UF_CRM_1700000000]\n")
    try:
        marked, plain = env.new_deal(), env.new_deal(UF_CRM_1700000000="")
        for d in (marked, plain):
            env.event(d)
        env.settle()
        [deal] = env.target.deals()
        assert deal["UF_CRM_SOURCE_DEAL"].endswith(f":{plain}")
    finally:
        stop(env)


def test_the_relays_own_comment_causes_no_target_write(relay_env: RelayEnv) -> None:
    env = relay_env
    deal_id = env.new_deal()
    env.event(deal_id)
    env.settle()
    env.target.reset_log()
    env.event(deal_id)  # an echo: e.g. the portal's event after the relay's comment
    env.settle()
    assert [r for r in env.target.requests if "crm.deal.update" in r.inner or "crm.deal.add" in r.inner] == []
