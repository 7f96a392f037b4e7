"""`relay mapping check`, `relay mapping init` and `relay preview` against the emulated portal pair,
run as the integrator runs them: the installed `relay` command in a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from relay.mapping.check import check_mapping, text_lines
from relay.mapping.deal import MappingSpec
from relay.mapping.draft import draft_mapping
from relay.mapping.facts import FieldFacts, PortalFacts, StageFacts, UserFacts
from relay.yamlconf import load_yaml, validate
from tests import relayenv

RELAY = str(Path(sys.executable).parent / "relay")
WRITES = ("add", "update", "delete", "set", "send", "bind", "unbind")


def run(env: relayenv.RelayEnv, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RELAY, *args], env=env.process_env(), capture_output=True, text=True, timeout=120)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[relayenv.RelayEnv]:
    env = relayenv.start(tmp_path)
    yield env
    relayenv.stop(env)


def _mapping_file(env: relayenv.RelayEnv) -> Path:
    return env.config_path.parent / "mappings/partner.yaml"


def _methods(portal) -> list[str]:  # type: ignore[no-untyped-def]
    return [m for r in portal.requests for m in (r.method, *r.inner) if m != "batch"]


# --- acceptance 1: four wrong references, each with file:line and a suggestion -------------------

BROKEN = {
    '"C1:EXECUTING": "C3:PREPARATION"': '"C1:EXECUTING": "C3:EXECUTING"',  # wrong stage
    '"80": "113"': '"80": "114"',  # wrong list item
    '"5": "17"': '"5": "99"',  # unknown user
    "  COMMENTS:": "  DATE_CREATE: {const: \"2026-01-01\"}\n  COMMENTS:",  # read-only target field
}


def test_check_reports_exactly_the_four_wrong_references_then_passes_when_fixed(pair: relayenv.RelayEnv) -> None:
    path = _mapping_file(pair)
    good = path.read_text()
    bad = good
    for old, new in BROKEN.items():
        assert old in bad, old
        bad = bad.replace(old, new, 1)
    path.write_text(bad)
    lines = bad.splitlines()

    def line_of(text: str) -> int:
        return next(n for n, line in enumerate(lines, 1) if text in line)

    result = run(pair, "mapping", "check", "--quiet")
    assert result.returncode == 1, result.stdout + result.stderr
    findings = [line for line in result.stdout.splitlines() if line.startswith(str(path))]
    assert len(findings) == 4, result.stdout
    by_line = {int(re.match(rf"{re.escape(str(path))}:(\d+):", f).group(1)): f for f in findings}  # type: ignore[union-attr]
    stage = by_line[line_of('"C1:EXECUTING": "C3:EXECUTING"')]
    assert "stage C3:EXECUTING does not exist on the target" in stage and "C3:" in stage.split(";")[1]
    item = by_line[line_of('"80": "114"')]
    assert "list item 114" in item and "use 113" in item and "Pickup" in item
    user = by_line[line_of('"5": "99"')]
    assert "user 99 does not exist" in user and "use 18" in user and "ivan.petrov@partner.example" in user
    ro = by_line[line_of("DATE_CREATE")]
    assert "read-only" in ro and "remove it" in ro

    path.write_text(good)
    result = run(pair, "mapping", "check", "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    # the newest result is stored for the web page
    stored = pair.store.checks()["partner"]
    assert stored["findings"] == [] and stored["file"] == str(path)


def test_check_uses_only_reads_and_respects_the_pacer(pair: relayenv.RelayEnv) -> None:
    pair.source.reset_log()
    pair.target.reset_log()
    assert run(pair, "mapping", "check", "--quiet").returncode == 0
    for portal in (pair.source, pair.target):
        methods = _methods(portal)
        assert methods and not [m for m in methods if m.rsplit(".", 1)[-1] in WRITES], methods
        assert all(r.status == 200 for r in portal.requests)


def test_fix_creates_a_missing_link_field(pair: relayenv.RelayEnv) -> None:
    path = _mapping_file(pair)
    path.write_text(path.read_text().replace("link_field: UF_CRM_SOURCE_DEAL", "link_field: UF_CRM_B24LINK"))
    result = run(pair, "mapping", "check", "--quiet")
    assert result.returncode == 1 and "no deal field UF_CRM_B24LINK" in result.stdout and "--fix" in result.stdout
    result = run(pair, "mapping", "check", "--quiet", "--fix")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "created target deal field UF_CRM_B24LINK" in result.stdout
    assert "UF_CRM_B24LINK" in requests.post(pair.target.method_url("crm.deal.fields"), timeout=5).json()["result"]


# --- acceptance 2: init drafts a mapping that check passes and that relays the demo deal ----------


def test_init_drafts_a_mapping_that_passes_check_and_relays_the_demo_deal(tmp_path: Path,
                                                                          pair: relayenv.RelayEnv) -> None:
    path = _mapping_file(pair)
    refused = run(pair, "mapping", "init", "--source", "partner", "--quiet")
    assert refused.returncode == 1 and "--force" in refused.stderr  # never overwrites silently
    result = run(pair, "mapping", "init", "--source", "partner", "--force")
    assert result.returncode == 0, result.stderr
    assert "TODO" in result.stdout and "reading" in result.stderr  # progress on stderr
    draft = path.read_text()
    assert '"1": "3"' in draft and '"C1:PREPARATION": "C3:PREPARATION"' in draft and '"79": "112"' in draft
    assert '"5": "18"' in draft and '"15": "301"' in draft
    assert "# TODO \"C1:EXECUTING\"" in draft  # no stage of that name on the target: left to fill in
    check = run(pair, "mapping", "check", "--quiet")
    assert check.returncode == 0, check.stdout

    relayed = relayenv.start(tmp_path / "relay2", mapping=draft)
    try:
        deal_id = relayed.new_deal(ASSIGNED_BY_ID="5")
        assert relayed.event(deal_id)[0] == 200
        relayed.settle()
        [target] = relayed.target.deals()
        assert target["CATEGORY_ID"] == "3" and target["STAGE_ID"] == "C3:PREPARATION"
        assert target["UF_CRM_DELIVERY"] == "112" and target["ASSIGNED_BY_ID"] == "18"
        assert target["TITLE"] == relayenv.DEAL["TITLE"] and float(target["OPPORTUNITY"]) == 1500.0
        assert target["ORIGIN_ID"] == str(deal_id)
        rows = relayed.target.rows(int(target["ID"]))
        assert [r["PRODUCT_ID"] for r in rows] == [301, 0]
    finally:
        relayenv.stop(relayed)


# --- acceptance 3: preview reads, maps, diffs and writes nothing ---------------------------------


def test_preview_prints_payload_and_diff_and_only_reads(pair: relayenv.RelayEnv) -> None:
    deal_id = pair.new_deal()
    fresh = run(pair, "preview", "--source", "partner", str(deal_id))
    assert fresh.returncode == 0, fresh.stderr
    assert "would CREATE" in fresh.stdout and 'STAGE_ID: "C3:NEW"' in fresh.stdout
    assert "nothing was written" in fresh.stdout
    pair.event(deal_id)
    pair.settle()
    [target] = pair.target.deals()
    pair.source.update_deal(deal_id, {"TITLE": "Boiler v2", "UF_CRM_1700000000": "80"})
    pair.source.reset_log()
    pair.target.reset_log()
    before = pair.store.counts()

    result = run(pair, "preview", "--source", "partner", str(deal_id))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"would UPDATE target record {target['ID']}" in out
    assert '"Boiler (partner.bitrix24.test)" -> "Boiler v2 (partner.bitrix24.test)"' in out
    assert 'UF_CRM_DELIVERY: "112" -> "113"' in out
    assert "product rows (2): same" in out
    for portal in (pair.source, pair.target):
        methods = _methods(portal)
        assert methods and not [m for m in methods if m.rsplit(".", 1)[-1] in WRITES], methods
    assert pair.target.deals()[0]["TITLE"] == target["TITLE"]
    assert pair.store.counts() == before  # no job queued either

    as_json = run(pair, "preview", "--source", "partner", str(deal_id), "--json")
    assert '"action": "update"' in as_json.stdout and '"field": "TITLE"' in as_json.stdout


def test_preview_of_a_deal_outside_the_trigger_says_why(pair: relayenv.RelayEnv) -> None:
    deal_id = pair.new_deal(STAGE_ID="C1:NEW")
    result = run(pair, "preview", "--source", "partner", str(deal_id))
    assert result.returncode == 0 and "would not be relayed" in result.stdout and "C1:NEW" in result.stdout


# --- the pure parts -------------------------------------------------------------------------------


def _facts(**kw) -> PortalFacts:  # type: ignore[no-untyped-def]
    base = PortalFacts(
        domain="p.test",
        deal_fields={"TITLE": FieldFacts("TITLE", "string", "Name"),
                     "STAGE_ID": FieldFacts("STAGE_ID", "crm_status", "Stage"),
                     "CATEGORY_ID": FieldFacts("CATEGORY_ID", "crm_category", "Pipeline", immutable=True),
                     "ASSIGNED_BY_ID": FieldFacts("ASSIGNED_BY_ID", "user", "Responsible"),
                     "ORIGIN_ID": FieldFacts("ORIGIN_ID", "string", "Origin"),
                     "DATE_CREATE": FieldFacts("DATE_CREATE", "datetime", "Created", read_only=True)},
        funnels={"0": "General", "2": "Sales"},
        stages={"NEW": StageFacts("NEW", "0", "New"), "C2:NEW": StageFacts("C2:NEW", "2", "New"),
                "C2:WON": StageFacts("C2:WON", "2", "Won")},
        users={"1": UserFacts("1", "Ann", "ann@x.test", True), "2": UserFacts("2", "Bob", "bob@x.test", False)},
        current_user="1")
    for k, v in kw.items():
        setattr(base, k, v)
    return base


def _spec(tmp_path: Path, text: str) -> tuple[MappingSpec, Path, dict[tuple[str, ...], int]]:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    loaded = load_yaml(path, {})
    return validate(MappingSpec, loaded), path, text_lines(loaded.lines)


def test_check_flags_a_stage_of_another_funnel_an_inactive_user_and_a_required_field(tmp_path: Path) -> None:
    spec, path, lines = _spec(tmp_path, """
fields:
  CATEGORY_ID: {const: 2}
  STAGE_ID: {from: STAGE_ID, map: {"NEW": "NEW"}}
  ASSIGNED_BY_ID: {from: ASSIGNED_BY_ID, map: {"1": "2"}}
link_field: ORIGIN_ID
""")
    target = _facts()
    target.deal_fields["UF_CRM_NEED"] = FieldFacts("UF_CRM_NEED", "string", "Needed", required=True)
    found = check_mapping(spec, path, lines, _facts(), target)
    texts = [f.text() for f in found]
    assert len(found) == 3, texts
    assert any("stage NEW belongs to target funnel 0, not to 2" in t and "use C2:NEW" in t and ":4:" in t
               for t in texts)
    assert any("user 2 (Bob) is not active" in t and ":5:" in t for t in texts)
    assert any("requires UF_CRM_NEED" in t for t in texts)


def test_check_names_unknown_fields_with_the_closest_one(tmp_path: Path) -> None:
    spec, path, lines = _spec(tmp_path, "fields:\n  TITEL: TITLE\n  TITLE: TITEL\nlink_field: UF_CRM_LINK\n")
    texts = [f.text() for f in check_mapping(spec, path, lines, _facts(), _facts())]
    assert any("no deal field TITEL" in t and "did you mean TITLE" in t and ":2:" in t for t in texts), texts
    assert any("source has no field TITEL" in t and ":3:" in t for t in texts), texts
    assert any("UF_CRM_LINK" in t and "--fix" in t for t in texts), texts


def test_draft_loads_as_a_valid_mapping_and_leaves_todo_for_what_it_cannot_match() -> None:
    source = _facts(funnels={"0": "General", "1": "Partners"},
                    stages={"C1:NEW": StageFacts("C1:NEW", "1", "New"), "C1:X": StageFacts("C1:X", "1", "Odd")},
                    users={"7": UserFacts("7", "Ann", "ann@x.test", True), "8": UserFacts("8", "Cy", "cy@y", True)},
                    products={"15": ("Router", "R-1"), "16": ("Cable", "")})
    target = _facts(funnels={"0": "General", "2": "Partners"},
                    stages={"C2:NEW": StageFacts("C2:NEW", "2", "New")},
                    products={"301": ("Router X", "R-1")})
    text, todo = draft_mapping("p", source, target)
    spec = MappingSpec.model_validate(yaml.safe_load(text))
    assert spec.fields["CATEGORY_ID"].map == {"0": "0", "1": "2"}
    assert spec.fields["STAGE_ID"].map == {"C1:NEW": "C2:NEW"}
    assert spec.tables["users"] == {"7": "1"} and spec.products.ids == {"15": 301}
    assert spec.fields["ASSIGNED_BY_ID"].default == "1" and "DATE_CREATE" not in spec.fields
    assert todo == 3  # stage C1:X, user 8, product 16
    assert '# TODO "C1:X"' in text and '# TODO "8"' in text and '# TODO "16"' in text


def test_check_looks_up_more_catalog_products_than_one_page_holds(pair: relayenv.RelayEnv) -> None:
    source_ids = [pair.source.add_product(f"Part {n}", 10.0) for n in range(60)]
    target_ids = [pair.target.add_product(f"Part {n}", 10.0) for n in range(60)]
    path = _mapping_file(pair)
    table = ", ".join(f'"{s}": "{t}"' for s, t in zip(source_ids, target_ids, strict=True))
    path.write_text(path.read_text().replace('ids: {"15": "301"}', f'ids: {{"15": "301", {table}}}'))
    result = run(pair, "mapping", "check", "--quiet")
    assert result.returncode == 0, result.stdout  # all 61 found, though a crm.product.list page holds 50
    path.write_text(path.read_text().replace(f'"{source_ids[-1]}": "{target_ids[-1]}"',
                                             f'"{source_ids[-1]}": "99999"'))
    result = run(pair, "mapping", "check", "--quiet")
    assert result.returncode == 1 and "product 99999 does not exist in the target catalog" in result.stdout
    assert result.stdout.count("does not exist") == 1
