"""Issue 10: an application robot's settings reach the mapping (``ROBOT_<CODE>`` source fields) and its
answer carries the target deal, a link to it, the status and a message; a failure says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.relayenv import APP_TOKEN, ROOT, start, stop

pytestmark = pytest.mark.e2e
MAPPING = (ROOT / "config/mappings/partner.yaml").read_text().replace(
    '  COMMENTS: {template: "Partner deal #{ID}: {COMMENTS}"}',
    '  COMMENTS: {template: "Partner deal #{ID}: {ROBOT_NOTE}"}')


def test_robot_settings_reach_the_mapping_and_the_answer_links_the_deal(tmp_path: Path) -> None:
    env = start(tmp_path, mapping=MAPPING)
    try:
        deal = env.new_deal()
        status, _ = env.source.send_app_robot(env.handler, deal, APP_TOKEN, event_token="tok-1",
                                              properties={"note": "urgent, call first", "funnel": "3"})
        assert status == 200
        env.settle()
        [target] = env.target.deals()
        assert target["COMMENTS"] == f"Partner deal #{deal}: urgent, call first"
        [sent] = env.source.event_sends()
        values = sent["RETURN_VALUES"]
        assert values["status"] == "created" and values["target_deal_id"] == str(target["ID"])
        assert values["target_deal_url"].endswith(f"/crm/deal/details/{target['ID']}/")
        assert values["message"] and sent["EVENT_TOKEN"] == "tok-1"
    finally:
        stop(env)


def test_a_robot_whose_deal_fails_mapping_gets_status_error_and_the_reason(tmp_path: Path) -> None:
    bad = MAPPING.replace('"C1:PREPARATION": "C3:NEW"', '"C1:NOTHING": "C3:NEW"')
    env = start(tmp_path, mapping=bad)
    try:
        deal = env.new_deal()
        env.source.send_app_robot(env.handler, deal, APP_TOKEN, event_token="tok-2", properties={"note": "x"})
        env.settle()
        [sent] = env.source.event_sends()
        assert sent["RETURN_VALUES"]["status"] == "error" and "STAGE_ID" in sent["RETURN_VALUES"]["message"]
        assert env.target.deals() == []
    finally:
        stop(env)
