"""Delete policies (issue 8, acceptance 5): ONCRMDEALDELETE from the source, and a target deal
deleted on the ESB."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.relayenv import ROOT, start, stop

pytestmark = pytest.mark.e2e
EXAMPLE = (ROOT / "config/mappings/partner.yaml").read_text()


def relay_then_delete(tmp_path: Path, deletes: str) -> tuple:  # type: ignore[type-arg]
    env = start(tmp_path, mapping=EXAMPLE + f"\ndeletes: {deletes}\n")
    deal_id = env.new_deal()
    env.event(deal_id)
    env.settle()
    [target] = env.target.deals()
    env.source.delete_deal(deal_id)
    status, body = env.event(deal_id, event="ONCRMDEALDELETE")
    assert status == 200 and '"job_id"' in body, body
    env.settle()
    return env, deal_id, target


def test_ignore_is_the_default_and_answers_ignored(relay_env) -> None:  # type: ignore[no-untyped-def]
    status, body = relay_env.event(5, event="ONCRMDEALDELETE")
    assert status == 200 and "ignored" in body


def test_comment_policy_comments_on_the_target_deal(tmp_path: Path) -> None:
    env, deal_id, _target = relay_then_delete(tmp_path, "{source: comment}")
    try:
        [deal] = env.target.deals()
        [comment] = env.target.comments(int(deal["ID"]))
        assert f"#{deal_id} was deleted" in comment["COMMENT"]
    finally:
        stop(env)


def test_stage_policy_moves_the_target_deal(tmp_path: Path) -> None:
    env, _deal_id, _target = relay_then_delete(tmp_path, "{source: stage, stage: 'C3:LOSE'}")
    try:
        [deal] = env.target.deals()
        assert deal["STAGE_ID"] == "C3:LOSE"
    finally:
        stop(env)


def test_delete_policy_deletes_the_target_deal_and_forgets_the_link(tmp_path: Path) -> None:
    env, deal_id, _target = relay_then_delete(tmp_path, "{source: delete}")
    try:
        assert env.target.deals() == []
        assert env.store.link("partner", str(deal_id)) is None
        [job] = [j for j in env.store.jobs(kind="sync") if j.trigger == "ONCRMDEALDELETE"]
        assert job.status == "done" and job.outcome == "source deleted: delete"
    finally:
        stop(env)


def test_a_stage_policy_needs_its_stage(tmp_path: Path) -> None:
    from relay.errors import ConfigError

    with pytest.raises(ConfigError, match="deletes"):
        start(tmp_path, mapping=EXAMPLE + "\ndeletes: {source: stage}\n")


@pytest.mark.parametrize("policy", ["dead", "recreate"])
def test_a_target_deal_deleted_on_the_esb(tmp_path: Path, policy: str) -> None:
    env = start(tmp_path, mapping=EXAMPLE + f"\ndeletes: {{target: {policy}}}\n")
    try:
        deal_id = env.new_deal()
        env.event(deal_id)
        env.settle()
        [first] = env.target.deals()
        env.target.delete_deal(int(first["ID"]))
        env.source.update_deal(deal_id, {"TITLE": "Boiler again"})
        env.event(deal_id)
        env.settle()
        if policy == "recreate":
            [again] = env.target.deals()
            assert again["ID"] != first["ID"] and again["TITLE"].startswith("Boiler again")
            assert env.store.link("partner", str(deal_id)).target_deal_id == again["ID"]  # type: ignore[union-attr]
        else:
            assert env.target.deals() == []
            assert any("relay unlink" in (j.last_error or "") for j in env.store.jobs(kind="sync", status="dead"))
    finally:
        stop(env)
