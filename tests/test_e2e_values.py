"""End to end over real HTTP: a manual amount and emptied fields reach the target (issue 7, point 9).

The target is read back with ``crm.deal.get`` on the emulated portal, i.e. in the shape a real portal
answers (empty dates ``""``, empty multiple fields ``[]``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.emulator import EmulatedPortal
from tests.relayenv import ROWS, RelayEnv, start, stop

pytestmark = pytest.mark.e2e

#: the example mapping's shape, without IS_MANUAL_OPPORTUNITY: the relay must carry it by itself
MAPPING = """\
trigger: {stages: ["C1:PREPARATION", "C1:EXECUTING"]}
fields:
  TITLE: TITLE
  OPPORTUNITY: OPPORTUNITY
  CURRENCY_ID: CURRENCY_ID
  CATEGORY_ID: {const: 3}
  STAGE_ID: {from: STAGE_ID, map: {"C1:PREPARATION": "C3:NEW", "C1:EXECUTING": "C3:PREPARATION"}}
  CLOSEDATE: CLOSEDATE
  UF_CRM_DUE: UF_CRM_DUE_SRC
  UF_CRM_TAGS: {from: UF_CRM_TAGS_SRC, map: {"41": "141", "42": "142"}}
create_only: [STAGE_ID, CATEGORY_ID]
products: {ids: {"15": "301"}}
link_field: UF_CRM_SOURCE_DEAL
"""


def add_field(portal: EmulatedPortal, name: str, uf_type: str, items: dict[int, str] | None = None) -> None:
    """A custom deal field on a running portal (multiple when it has list items)."""
    portal.config.uf_fields[name] = uf_type
    if items:
        portal.config.enum_items[name] = items
        portal.config.uf_multiple.append(name)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RelayEnv]:
    env = start(tmp_path, mapping=MAPPING)
    add_field(env.source, "UF_CRM_DUE_SRC", "date")
    add_field(env.source, "UF_CRM_TAGS_SRC", "enumeration", {41: "Urgent", 42: "VIP"})
    add_field(env.target, "UF_CRM_DUE", "date")
    add_field(env.target, "UF_CRM_TAGS", "enumeration", {141: "Urgent", 142: "VIP"})
    try:
        yield env
    finally:
        stop(env)


@pytest.fixture
def example_env(tmp_path: Path) -> Iterator[RelayEnv]:
    env = start(tmp_path)  # config/mappings/partner.yaml maps IS_MANUAL_OPPORTUNITY itself
    try:
        yield env
    finally:
        stop(env)


def target_deal(env: RelayEnv) -> dict[str, Any]:
    """The only target deal, as crm.deal.get returns it."""
    [deal] = env.target.deals()
    return env.target.call("crm.deal.get", {"id": deal["ID"]})


def relay(env: RelayEnv, deal_id: int) -> dict[str, Any]:
    env.event(deal_id)
    env.settle()
    return target_deal(env)


def rows_sum(env: RelayEnv, deal: dict[str, Any]) -> float:
    return sum(r["PRICE"] * r["QUANTITY"] for r in env.target.rows(int(deal["ID"])))


@pytest.mark.parametrize("setup", ["env", "example_env"])  # carried by the relay | mapped explicitly
def test_manual_amount_survives_the_rows_on_create_and_update_and_back_to_automatic(
    setup: str, request: pytest.FixtureRequest
) -> None:
    env: RelayEnv = request.getfixturevalue(setup)
    deal_id = env.new_deal(OPPORTUNITY="999", IS_MANUAL_OPPORTUNITY="Y")
    assert env.source.deal(deal_id)["OPPORTUNITY"] == "999.00"  # rows sum to 1500, the amount is manual

    created = relay(env, deal_id)
    assert (created["OPPORTUNITY"], created["IS_MANUAL_OPPORTUNITY"]) == ("999.00", "Y")
    assert rows_sum(env, created) == 1500

    env.source.update_deal(deal_id, {"TITLE": "Boiler v2"})
    env.source.set_rows(deal_id, [dict(ROWS[0], QUANTITY=3)])  # rows now sum to 3600
    updated = relay(env, deal_id)
    assert updated["ID"] == created["ID"] and updated["TITLE"].startswith("Boiler v2")
    assert (updated["OPPORTUNITY"], updated["IS_MANUAL_OPPORTUNITY"]) == ("999.00", "Y")
    assert rows_sum(env, updated) == 3600

    env.source.update_deal(deal_id, {"IS_MANUAL_OPPORTUNITY": "N"})  # the source recomputes: 3600
    assert env.source.deal(deal_id)["OPPORTUNITY"] == "3600.00"
    automatic = relay(env, deal_id)
    assert (automatic["OPPORTUNITY"], automatic["IS_MANUAL_OPPORTUNITY"]) == ("3600.00", "N")


def test_emptied_multiple_field_and_dates_are_cleared_on_the_target(env: RelayEnv) -> None:
    deal_id = env.new_deal(CLOSEDATE="2026-09-30", UF_CRM_DUE_SRC="2026-09-01", UF_CRM_TAGS_SRC=["41", "42"])
    created = relay(env, deal_id)
    assert created["UF_CRM_TAGS"] == ["141", "142"]
    assert created["CLOSEDATE"].startswith("2026-09-30") and created["UF_CRM_DUE"].startswith("2026-09-01")

    env.source.update_deal(deal_id, {"UF_CRM_TAGS_SRC": [], "UF_CRM_DUE_SRC": "", "CLOSEDATE": ""})
    source = env.source.call("crm.deal.get", {"id": deal_id})
    assert (source["UF_CRM_TAGS_SRC"], source["UF_CRM_DUE_SRC"], source["CLOSEDATE"]) == ([], "", "")
    env.target.reset_log()
    cleared = relay(env, deal_id)
    assert env.target.count_requests() == 1  # the fingerprint changed, so the update was sent
    assert cleared["ID"] == created["ID"]
    assert (cleared["UF_CRM_TAGS"], cleared["UF_CRM_DUE"], cleared["CLOSEDATE"]) == ([], "", "")

    env.source.update_deal(deal_id, {"UF_CRM_TAGS_SRC": ["42"], "CLOSEDATE": "2026-10-15"})
    refilled = relay(env, deal_id)
    assert refilled["UF_CRM_TAGS"] == ["142"] and refilled["CLOSEDATE"].startswith("2026-10-15")
    assert refilled["UF_CRM_DUE"] == ""
