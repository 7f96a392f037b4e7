"""Pure: the company/contacts mapping sections, the client transform and its fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.errors import ConfigError, MappingError
from relay.mapping.clients import COMPANY, CONTACT, fingerprint, match_values, transform
from relay.mapping.deal import load_mapping
from relay.sync.clients import Need, needs_of
from tests.test_mapping import spec_of

BASE = "link_field: ORIGIN_ID\nfields: {TITLE: TITLE}\ntables: {ind: {IT: IT}}\n"
SECTIONS = """
company:
  fields: {TITLE: TITLE, PHONE: PHONE, INDUSTRY: {from: INDUSTRY, map: ind, default: OTHER}, COMMENTS: COMMENTS}
  create_only: [COMMENTS]
  match: [stamp, requisite: RQ_INN, phone, email, title]
  on_match: update
  requisite: {preset_id: 1, fields: [RQ_INN]}
contacts:
  fields: {NAME: "{NAME} {LAST_NAME}", EMAIL: EMAIL}
  match: [stamp, email]
"""
SOURCE = {"id": "partner", "domain": "p.test", "member_id": "m"}


def test_sections_parse_with_the_issues_flow_list_form() -> None:
    spec = spec_of(BASE + SECTIONS)
    assert spec.company is not None and spec.contacts is not None
    assert spec.company.rules == ["stamp", "requisite:RQ_INN", "phone", "email", "title"]
    assert spec.company.on_match == "update" and spec.contacts.on_match == "link"
    assert spec.contacts.rules == ["stamp", "email"]


@pytest.mark.parametrize("extra, message", [
    ("company: {fields: {TITLE: TITLE}, match: [fuzzy]}", "match"),
    ("company: {fields: {TITLE: TITLE}, on_match: merge}", "on_match"),
    ("company: {fields: {TITLE: {from: TITLE, map: nope}}}", "no table 'nope'"),
    ("company: {fields: {ORIGIN_ID: ID}}", "stamp"),
    ("company: {fields: {TITLE: TITLE}, create_only: [PHONE]}", "not a key of fields"),
    ("company: {fields: {TITLE: TITLE}, match: [requisite: INN]}", "not a requisite field"),
])
def test_bad_sections_are_refused_with_the_key_and_line(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(BASE + extra + "\n")
    with pytest.raises(ConfigError) as err:
        load_mapping(path, {})
    assert message in str(err.value) and "company" in str(err.value) and "line 4" in str(err.value)


def test_company_id_in_fields_conflicts_with_the_company_section(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("link_field: ORIGIN_ID\nfields: {TITLE: TITLE, COMPANY_ID: COMPANY_ID}\n"
                    "company: {fields: {TITLE: TITLE}}\n")
    with pytest.raises(ConfigError, match="COMPANY_ID is filled by the relay"):
        load_mapping(path, {})


def test_transform_sends_each_phone_once_and_keeps_create_only_out_of_updates() -> None:
    spec = spec_of(BASE + SECTIONS)
    record = {"ID": "5", "TITLE": "Acme", "INDUSTRY": "IT", "COMMENTS": "c",
              "PHONE": [{"ID": "1", "VALUE": "+7 900 1", "VALUE_TYPE": "WORK"},
                        {"ID": "2", "VALUE": "79001", "VALUE_TYPE": "MOBILE"}]}
    target = transform(record, spec, COMPANY, SOURCE, {"RQ_INN": "7700", "RQ_KPP": "1"})
    assert target.fields == {"TITLE": "Acme", "INDUSTRY": "IT", "COMMENTS": "c",
                             "PHONE": [{"VALUE": "+7 900 1", "VALUE_TYPE": "WORK"}]}
    assert "COMMENTS" not in target.update_fields and "PHONE" not in target.update_fields
    assert target.requisite == {"RQ_INN": "7700"}
    current = {"PHONE": [{"ID": "9", "VALUE": "+79001", "VALUE_TYPE": "WORK"},
                         {"ID": "10", "VALUE": "+7 555", "VALUE_TYPE": "WORK"}]}
    assert target.update(current)["PHONE"] == [{"ID": "10", "VALUE": ""}]  # exactly the source's set


def test_unmapped_value_without_default_fails() -> None:
    spec = spec_of(BASE + "company: {fields: {INDUSTRY: {from: INDUSTRY, map: {IT: IT}}}}\n")
    with pytest.raises(MappingError, match="INDUSTRY"):
        transform({"INDUSTRY": "BANK"}, spec, COMPANY, SOURCE)


def test_fingerprint_ignores_order_and_phone_formatting_but_not_values() -> None:
    spec = spec_of(BASE + SECTIONS)
    a = {"NAME": "Ann", "LAST_NAME": "Lee", "EMAIL": [{"VALUE": "A@x.io"}, {"VALUE": "b@x.io"}]}
    b = {"NAME": "Ann", "LAST_NAME": "Lee", "EMAIL": [{"VALUE": "b@x.io"}, {"VALUE": "a@x.io"}]}
    c = {"NAME": "Ann", "LAST_NAME": "Lee", "EMAIL": [{"VALUE": "c@x.io"}]}
    prints = [fingerprint(transform(r, spec, CONTACT, SOURCE)) for r in (a, b, c)]
    assert prints[0] == prints[1] != prints[2]


def test_match_values_and_needs() -> None:
    spec = spec_of(BASE + SECTIONS)
    target = transform({"TITLE": " Acme ", "PHONE": [{"VALUE": "+7 900"}], "EMAIL": []}, spec, COMPANY, SOURCE)
    assert match_values(target, "phone", None) == ["+7 900"]
    assert match_values(target, "title", None) == ["Acme"]
    assert match_values(target, "email", None) == []
    assert match_values(target, "requisite:RQ_INN", {"RQ_INN": "77"}) == ["77"]
    spec = spec_of(BASE + SECTIONS)
    deal = {"COMPANY_ID": "3", "CONTACT_ID": "8", "CONTACT_IDS": ["8", "9", "8"]}
    assert needs_of(deal, spec, "p") == [Need("p", COMPANY, "3"), Need("p", CONTACT, "8"), Need("p", CONTACT, "9")]
    assert needs_of({"COMPANY_ID": "0", "CONTACT_ID": None}, spec, "p") == []


def test_describe_lists_the_sections() -> None:
    from relay.mapping.deal import describe

    lines = describe(spec_of(BASE + SECTIONS + "files: {fields: {UF_CRM_T: UF_CRM_S}, max_bytes: 10}\n"))
    assert "company: TITLE, PHONE, INDUSTRY, COMMENTS; match stamp, requisite:RQ_INN, phone, email, title, " \
           "on match: update" in lines
    assert "files: UF_CRM_T <- UF_CRM_S (at most 10 bytes a file)" in lines
