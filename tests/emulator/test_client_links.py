"""Deal contacts, crm.duplicate.findbycomm and requisites (incl. inside batch)."""

from __future__ import annotations


def _result(reply):
    assert reply.status_code == 200, reply.text
    return reply.json()["result"]


def test_deal_contact_ids_and_items(target, rest):
    a, b, c = (target.add_contact({"NAME": n}) for n in "abc")
    deal = _result(rest(target, "crm.deal.add", {"fields": {"TITLE": "D", "CONTACT_IDS": [b, a]}}))
    got = _result(rest(target, "crm.deal.get", {"id": deal}))
    assert got["CONTACT_ID"] == str(b) and "CONTACT_IDS" not in got
    items = _result(rest(target, "crm.deal.contact.items.get", {"id": deal}))
    assert items == [{"CONTACT_ID": b, "SORT": 10, "ROLE_ID": 0, "IS_PRIMARY": "Y"},
                     {"CONTACT_ID": a, "SORT": 20, "ROLE_ID": 0, "IS_PRIMARY": "N"}]
    assert _result(rest(target, "crm.deal.contact.items.set", {"id": deal, "items": [
        {"CONTACT_ID": a}, {"CONTACT_ID": c, "IS_PRIMARY": "Y", "SORT": 5}]})) is True
    items = _result(rest(target, "crm.deal.contact.items.get", {"id": deal}))
    assert [(i["CONTACT_ID"], i["IS_PRIMARY"], i["SORT"]) for i in items] == [(c, "Y", 5), (a, "N", 10)]
    assert target.deal(deal)["CONTACT_ID"] == str(c)
    assert _result(rest(target, "crm.deal.contact.add", {"id": deal, "fields": {"CONTACT_ID": a}})) is False
    assert _result(rest(target, "crm.deal.contact.add", {"id": deal, "fields": {"CONTACT_ID": b}})) is True
    assert _result(rest(target, "crm.deal.contact.delete", {"id": deal, "fields": {"CONTACT_ID": c}})) is True
    assert [i["IS_PRIMARY"] for i in target.deal_contacts(deal)] == ["Y", "N"]
    assert _result(rest(target, "crm.deal.update", {"id": deal, "fields": {"CONTACT_IDS": [c]}})) is True
    assert [i["CONTACT_ID"] for i in target.deal_contacts(deal)] == [c]
    assert _result(rest(target, "crm.deal.contact.items.delete", {"id": deal})) is True
    assert target.deal_contacts(deal) == [] and target.deal(deal)["CONTACT_ID"] is None


def test_deleting_contact_unbinds_it(target, rest):
    a, b = target.add_contact({"NAME": "a"}), target.add_contact({"NAME": "b"})
    deal = _result(rest(target, "crm.deal.add", {"fields": {"CONTACT_IDS": [a, b]}}))
    rest(target, "crm.contact.delete", {"id": a})
    assert [i["CONTACT_ID"] for i in target.deal_contacts(deal)] == [b]
    assert target.deal(deal)["CONTACT_ID"] == str(b)


def test_deal_contact_errors(target, rest):
    missing = rest(target, "crm.deal.contact.items.get", {"id": 999999})
    assert missing.status_code == 400
    assert (missing.json()["error"], missing.json()["error_description"]) == ("", "Not found.")
    bad = rest(target, "crm.deal.contact.items.set", {"id": 0, "items": []})
    assert bad.json()["error_description"] == "The parameter ownerEntityID is invalid or not defined."
    deal = target.add_deal({})
    bad = rest(target, "crm.deal.contact.add", {"id": deal, "fields": {"CONTACT_ID": 0}})
    assert bad.json()["error_description"] == "The parameter 'fields' is not valid."


def test_findbycomm(target, rest):
    c1 = target.add_contact({"PHONE": [{"VALUE": "+7 (900) 123-45-67"}], "EMAIL": [{"VALUE": "Ann@Example.com"}]})
    c2 = target.add_contact({"PHONE": [{"VALUE": "79001234567 ext. 12"}]})
    co = target.add_company({"PHONE": [{"VALUE": "+79001234567"}]})

    def find(params):
        return _result(rest(target, "crm.duplicate.findbycomm", params))

    assert find({"type": "PHONE", "values": ["79001234567"]}) == {"CONTACT": [c1, c2], "COMPANY": [co]}
    assert find({"type": "PHONE", "values": ["+7 900 1234567"], "entity_type": "COMPANY"}) == {"COMPANY": [co]}
    assert find({"type": "EMAIL", "values": ["ann@example.COM "]}) == {"CONTACT": [c1]}
    assert find({"type": "PHONE", "values": ["89001234567"]}) == []
    reply = rest(target, "crm.duplicate.findbycomm", {"values": ["1"]})
    assert reply.status_code == 400 and reply.json()["error_description"] == "Communication type is not defined."
    reply = rest(target, "crm.duplicate.findbycomm", {"type": "PHONE"})
    assert reply.json()["error_description"] == "Communication values is not defined."


def test_requisites_find_company_by_inn(target, rest):
    presets = _result(rest(target, "crm.requisite.preset.list"))
    assert presets[0]["ID"] == "1" and presets[0]["NAME"] == "Organization" and "COUNTRY_ID" in presets[0]
    company = target.add_company({"TITLE": "Acme"})
    rq = _result(rest(target, "crm.requisite.add", {"fields": {
        "ENTITY_TYPE_ID": 4, "ENTITY_ID": company, "PRESET_ID": 1, "NAME": "Org",
        "RQ_INN": "7701234567", "RQ_KPP": "770101001", "RQ_COMPANY_NAME": "Acme LLC"}}))
    assert isinstance(rq, int)
    found = _result(rest(target, "crm.requisite.list", {"filter": {"RQ_INN": "7701234567"},
                                                        "select": ["ENTITY_TYPE_ID", "ENTITY_ID"]}))
    assert found == [{"ID": str(rq), "ENTITY_TYPE_ID": "4", "ENTITY_ID": str(company)}]
    got = _result(rest(target, "crm.requisite.get", {"id": rq}))
    assert got["RQ_KPP"] == "770101001" and got["RQ_EDRPOU"] is None and got["PRESET_ID"] == "1"
    assert _result(rest(target, "crm.requisite.update", {"id": rq, "fields": {"RQ_EDRPOU": "12345678"}})) is True
    assert _result(rest(target, "crm.requisite.list", {"filter": {"RQ_EDRPOU": "12345678"}}))[0]["ID"] == str(rq)
    rest(target, "crm.company.delete", {"id": company})
    assert target.requisites() == []


def test_requisite_errors(target, rest):
    def err(method, params):
        reply = rest(target, method, params)
        assert reply.status_code == 400
        return reply.json()["error_description"]

    contact = target.add_contact({"NAME": "x"})
    base = {"ENTITY_TYPE_ID": 3, "ENTITY_ID": contact, "PRESET_ID": 3, "NAME": "Person"}
    assert err("crm.requisite.add", {"fields": {**base, "ENTITY_TYPE_ID": 2}}) == \
        "ENTITY_TYPE_ID is not defined or invalid."
    assert err("crm.requisite.add", {"fields": {**base, "PRESET_ID": 99}}) == "PRESET_ID is not defined or invalid."
    assert err("crm.requisite.add", {"fields": {**base, "ENTITY_ID": 999}}) == "Entity not found."
    assert err("crm.requisite.get", {"id": 57}) == "The Requisite with ID '57' is not found"
    assert err("crm.requisite.delete", {"id": 57}) == "The Requisite with ID '57' is not found"
    rq = _result(rest(target, "crm.requisite.add", {"fields": base}))
    assert _result(rest(target, "crm.requisite.delete", {"id": rq})) is True


def test_batch_requisite_lookup_then_company(target, rest):
    company = target.add_company({"TITLE": "Acme"})
    target.call("crm.requisite.add", {"fields": {"ENTITY_TYPE_ID": 4, "ENTITY_ID": company, "PRESET_ID": 1,
                                                 "NAME": "Org", "RQ_INN": "123"}})
    body = _result(rest(target, "batch", {"cmd": {
        "rq": "crm.requisite.list?filter[RQ_INN]=123&select[]=ENTITY_ID",
        "co": "crm.company.get?id=$result[rq][0][ENTITY_ID]",
        "dup": "crm.duplicate.findbycomm?type=PHONE&values[]=000",
        "items": "crm.deal.contact.items.get?id=999999",
    }}))
    assert body["result"]["co"]["TITLE"] == "Acme"
    assert body["result"]["dup"] == []
    assert body["result_error"]["items"]["error_description"] == "Not found."
