"""Funnel moves (issue 8, acceptance 4): a source move mapped to another target funnel moves the target
deal with crm.item.update; a create_only funnel stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.relayenv import start, stop

pytestmark = pytest.mark.e2e
MAPPING = """
trigger: {stages: ["C1:PREPARATION", "PREPARATION"]}
fields:
  TITLE: TITLE
  CATEGORY_ID: {from: CATEGORY_ID, map: {"1": "3", "0": "0"}}
  STAGE_ID: {from: STAGE_ID, map: {"C1:PREPARATION": "C3:NEW", "PREPARATION": "PREPARATION"}}
products: {enabled: false}
link_field: UF_CRM_SOURCE_DEAL
"""


@pytest.mark.parametrize("create_only", [False, True])
def test_a_funnel_move_follows_unless_create_only(tmp_path: Path, create_only: bool) -> None:
    mapping = MAPPING + ("create_only: [CATEGORY_ID, STAGE_ID]\n" if create_only else "")
    env = start(tmp_path, mapping=mapping)
    try:
        deal_id = env.source.add_deal({"TITLE": "Mover", "CATEGORY_ID": "1", "STAGE_ID": "C1:PREPARATION"})
        env.event(deal_id)
        env.settle()
        [deal] = env.target.deals()
        assert (deal["CATEGORY_ID"], deal["STAGE_ID"]) == ("3", "C3:NEW")
        env.source.move_deal(deal_id, 0, "PREPARATION")  # no ONCRMDEALUPDATE for a move: an event by hand
        env.source.update_deal(deal_id, {"TITLE": "Mover moved"})
        env.event(deal_id)
        env.settle()
        [deal] = env.target.deals()
        assert deal["TITLE"] == "Mover moved"
        expected = ("3", "C3:NEW") if create_only else ("0", "PREPARATION")
        assert (deal["CATEGORY_ID"], deal["STAGE_ID"]) == expected
    finally:
        stop(env)
