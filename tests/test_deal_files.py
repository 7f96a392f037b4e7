"""Files travel with the deal (issue 8, acceptance 3): two files arrive once; an update without file
changes uploads nothing; a file over the limit is skipped and the comment on the source says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.emulator.config import PortalConfig
from tests.relayenv import ROOT, RelayEnv, start, stop

pytestmark = pytest.mark.e2e
FILES = "\nfiles:\n  fields: {UF_CRM_T_DOCS: UF_CRM_DOCS}\n  max_bytes: 1000\n"
MAPPING = (ROOT / "config/mappings/partner.yaml").read_text() + FILES


def _fields(source: PortalConfig, target: PortalConfig) -> None:
    source.uf_fields = {**source.uf_fields, "UF_CRM_DOCS": "file"}
    source.uf_multiple = [*source.uf_multiple, "UF_CRM_DOCS"]
    target.uf_fields = {**target.uf_fields, "UF_CRM_T_DOCS": "file"}
    target.uf_multiple = [*target.uf_multiple, "UF_CRM_T_DOCS"]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RelayEnv]:
    env = start(tmp_path, mapping=MAPPING, portals=_fields)
    yield env
    stop(env)


def _uploads(env: RelayEnv) -> int:
    return sum(1 for r in env.target.requests if r.method == "crm.deal.update" and "fileData" in str(r.params))


def test_two_files_arrive_once_and_an_update_without_file_changes_uploads_nothing(env: RelayEnv) -> None:
    deal = env.new_deal()
    env.source.add_file_to_deal(deal, "UF_CRM_DOCS", "offer.pdf", b"%PDF offer")
    env.source.add_file_to_deal(deal, "UF_CRM_DOCS", "plan.png", b"\x89PNG plan")
    env.event(deal)
    env.settle()
    [target] = env.target.deals()
    held = sorted((name, content) for _, name, content in env.target.files_of(int(target["ID"]), "UF_CRM_T_DOCS"))
    assert held == [("offer.pdf", b"%PDF offer"), ("plan.png", b"\x89PNG plan")]
    uploads = _uploads(env)
    assert uploads == 1  # one crm.deal.update carrying both files
    env.source.update_deal(deal, {"TITLE": "Boiler, new title"})
    env.event(deal)
    env.settle()
    [target] = env.target.deals()
    assert target["TITLE"].startswith("Boiler, new title")
    assert _uploads(env) == uploads  # nothing uploaded again
    assert len(env.target.files_of(int(target["ID"]), "UF_CRM_T_DOCS")) == 2


def test_a_file_over_the_limit_is_skipped_and_the_comment_says_so(env: RelayEnv) -> None:
    deal = env.new_deal()
    env.source.add_file_to_deal(deal, "UF_CRM_DOCS", "small.txt", b"small")
    env.source.add_file_to_deal(deal, "UF_CRM_DOCS", "huge.bin", b"x" * 5000)
    env.event(deal)
    env.settle()
    [target] = env.target.deals()
    assert [n for _, n, _ in env.target.files_of(int(target["ID"]), "UF_CRM_T_DOCS")] == ["small.txt"]
    [comment] = env.source.comments(deal)
    assert "huge.bin" in comment["COMMENT"] and "small.txt" not in comment["COMMENT"]
