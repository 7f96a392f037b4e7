"""Whole records (issue 8): a deal's company and contacts travel with it, found before created,
with exactly the source's phones and e-mails on the target."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from relay.emulator import EmulatedPortal
from tests.relayenv import ROOT, RelayEnv, start, stop

pytestmark = pytest.mark.e2e
EXAMPLE = (ROOT / "config/mappings/partner.yaml").read_text().replace("  UF_CRM_PARTNER_COMPANY: COMPANY_ID\n", "")
CLIENTS = """
company:
  fields: {TITLE: TITLE, PHONE: PHONE, EMAIL: EMAIL, INDUSTRY: {from: INDUSTRY, map: {IT: IT}, default: OTHER}}
  match: [stamp, requisite: RQ_INN, phone, email, title]
  on_match: link
  requisite: {preset_id: 1, fields: [RQ_INN]}
contacts:
  fields: {NAME: NAME, LAST_NAME: LAST_NAME, PHONE: PHONE, EMAIL: EMAIL}
  match: [stamp, phone, email]
"""


def _phone(*values: str) -> list[dict[str, str]]:
    return [{"VALUE": v, "VALUE_TYPE": "WORK"} for v in values]


def _values(record: dict[str, Any], field: str) -> list[str]:
    return sorted(e["VALUE"] for e in record.get(field) or [])


def _company(portal: EmulatedPortal, n: int, inn: str) -> int:
    company = portal.add_company({"TITLE": f"Client {n}", "INDUSTRY": "IT", "PHONE": _phone(f"+7 900 000-00-0{n}"),
                                  "EMAIL": [{"VALUE": f"c{n}@client.example", "VALUE_TYPE": "WORK"}]})
    portal.call("crm.requisite.add", {"fields": {"ENTITY_TYPE_ID": 4, "ENTITY_ID": company, "PRESET_ID": 1,
                                                 "NAME": f"Client {n}", "RQ_INN": inn}})
    return company


@pytest.fixture
def env(tmp_path: Path) -> Any:
    env = start(tmp_path, mapping=EXAMPLE + CLIENTS)
    yield env
    stop(env)


def _by_origin(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(r.get("ORIGIN_ID")) for r in records if str(r.get("ORIGINATOR_ID", "")).startswith("b24relay:"))


def test_thirty_deals_of_three_companies_and_contacts_point_at_three_of_each(env: RelayEnv) -> None:
    # a client the ESB already knows: same tax id as partner company 2 (another title, no phone)
    known = env.target.add_company({"TITLE": "ESB's own name for client 2"})
    env.target.call("crm.requisite.add", {"fields": {"ENTITY_TYPE_ID": 4, "ENTITY_ID": known, "PRESET_ID": 1,
                                                     "NAME": "x", "RQ_INN": "7700000002"}})
    known_contact = env.target.add_contact({"NAME": "Known", "PHONE": _phone("+7 (901) 000 00 03")})
    companies = [_company(env.source, n, f"770000000{n}") for n in (1, 2, 3)]
    contacts = [env.source.add_contact({"NAME": f"Person {n}", "LAST_NAME": "Doe", "PHONE": _phone(f"+79010000{n:03d}"),
                                        "EMAIL": [{"VALUE": f"p{n}@client.example", "VALUE_TYPE": "WORK"}]})
                for n in (1, 2, 3)]
    deals = [env.new_deal(COMPANY_ID=str(companies[i % 3]), CONTACT_IDS=[contacts[i % 3]]) for i in range(30)]
    for deal in deals:
        env.event(deal)
    env.settle()

    target_deals = env.target.deals()
    assert len(target_deals) == 30
    made = _by_origin(env.target.companies())
    assert made == Counter({str(companies[0]): 1, str(companies[2]): 1})  # company 2 was linked, not created
    assert len(env.target.companies()) == 3
    assert len(env.target.contacts()) == 3  # contact 3 matched the ESB's contact by phone
    assert Counter(d["COMPANY_ID"] for d in target_deals) == Counter(
        {str(c["ID"]): 10 for c in env.target.companies()})
    by_origin = {str(c.get("ORIGIN_ID")): c for c in env.target.companies()}
    first = by_origin[str(companies[0])]
    assert first["TITLE"] == "Client 1" and first["INDUSTRY"] == "IT"
    assert _values(first, "PHONE") == ["+7 900 000-00-01"] and _values(first, "EMAIL") == ["c1@client.example"]
    assert [r["RQ_INN"] for r in env.target.requisites() if str(r["ENTITY_ID"]) == str(first["ID"])] == ["7700000001"]
    assert env.target.companies()[0]["TITLE"] == "ESB's own name for client 2"  # never written (on_match: link)
    contact_of = Counter()
    for d in target_deals:
        bound = [b["CONTACT_ID"] for b in env.target.deal_contacts(int(d["ID"]))]
        assert len(bound) == 1
        contact_of[str(bound[0])] += 1
    assert sorted(contact_of.values()) == [10, 10, 10]
    assert str(known_contact) in contact_of
    assert _by_origin(env.target.contacts()) == Counter({str(contacts[0]): 1, str(contacts[1]): 1})


def test_changed_added_and_removed_phones_leave_exactly_the_sources_set(env: RelayEnv) -> None:
    contact = env.source.add_contact({"NAME": "Ann", "PHONE": _phone("+79020000001", "+79020000002", "+79020000003")})
    deal = env.new_deal(COMPANY_ID="", CONTACT_IDS=[contact])
    env.event(deal)
    env.settle()
    [copy] = env.target.contacts()
    assert _values(copy, "PHONE") == ["+79020000001", "+79020000002", "+79020000003"]
    entries = env.source.call("crm.contact.get", {"id": contact})["PHONE"]
    env.source.call("crm.contact.update", {"id": contact, "fields": {"PHONE": [
        {"ID": entries[0]["ID"], "VALUE": "+79020000009"},       # changed
        {"ID": entries[2]["ID"], "VALUE": ""},                   # removed
        {"VALUE": "+79020000004", "VALUE_TYPE": "MOBILE"}]}})    # added
    env.source.update_deal(deal, {"COMMENTS": "again"})
    env.event(deal)
    env.settle()
    [copy] = env.target.contacts()
    assert _values(copy, "PHONE") == ["+79020000002", "+79020000004", "+79020000009"]
    [target_deal] = env.target.deals()
    assert [b["CONTACT_ID"] for b in env.target.deal_contacts(int(target_deal["ID"]))] == [int(copy["ID"])]


def test_an_unchanged_client_is_not_written_again(env: RelayEnv) -> None:
    company = _company(env.source, 5, "7700000005")
    deal = env.new_deal(COMPANY_ID=str(company))
    env.event(deal)
    env.settle()
    before = env.target.companies()
    env.source.reset_log()
    env.source.update_deal(deal, {"COMMENTS": "changed deal, same company"})
    env.event(deal)
    env.settle()
    reads = [r.inner for r in env.source.requests if "crm.timeline.comment.add" not in r.inner]
    assert len(reads) == 1 and "crm.deal.list" in reads[0] and "crm.company.list" in reads[0]  # read ahead
    after = env.target.companies()
    assert after == before and len(after) == 1
    assert len(env.target.deals()) == 1 and env.target.deals()[0]["COMMENTS"].endswith("changed deal, same company")
