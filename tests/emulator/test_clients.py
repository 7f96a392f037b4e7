"""crm.company.* / crm.contact.*: multi-fields, update semantics, list, errors, batch."""

from __future__ import annotations

from relay.phpquery import build_query


def _result(reply):
    assert reply.status_code == 200, reply.text
    return reply.json()["result"]


def test_contact_add_get_with_multifields_and_origin(target, rest):
    company = _result(rest(target, "crm.company.add", {"fields": {"TITLE": "Acme", "ORIGIN_ID": "77"}}))
    contact_id = _result(rest(target, "crm.contact.add", {"fields": {
        "NAME": "Ivan", "LAST_NAME": "Petrov", "COMPANY_ID": company, "ORIGINATOR_ID": "partner",
        "ORIGIN_ID": "12", "PHONE": [{"VALUE": "+7 900 111-22-33", "VALUE_TYPE": "MOBILE"}],
        "EMAIL": [{"VALUE": "ivan@example.com"}], "BOGUS": 1}}))
    assert isinstance(contact_id, int)
    got = _result(rest(target, "crm.contact.get", {"id": contact_id}))
    assert got["ID"] == str(contact_id) and got["NAME"] == "Ivan"
    assert got["COMPANY_ID"] == str(company) and "COMPANY_IDS" not in got
    assert got["ORIGINATOR_ID"] == "partner" and got["ORIGIN_ID"] == "12"
    assert got["HAS_PHONE"] == "Y" and got["HAS_EMAIL"] == "Y" and got["HAS_IMOL"] == "N"
    [phone] = got["PHONE"]
    assert phone["VALUE"] == "+7 900 111-22-33" and phone["VALUE_TYPE"] == "MOBILE"
    assert phone["TYPE_ID"] == "PHONE" and isinstance(phone["ID"], str)
    assert got["EMAIL"][0]["VALUE_TYPE"] == "WORK"
    assert "WEB" not in got and "IM" not in got and "BOGUS" not in got
    company_got = _result(rest(target, "crm.company.get", {"id": company}))
    assert company_got["TITLE"] == "Acme" and company_got["ORIGIN_ID"] == "77"
    assert company_got["HAS_PHONE"] == "N" and "PHONE" not in company_got


def test_multifield_update_adds_changes_and_deletes(target, rest):
    company = target.add_company({"TITLE": "Acme", "PHONE": [
        {"VALUE": "111"}, {"VALUE": "222"}, {"VALUE": "333"}, {"VALUE": "444"}]})
    ids = [p["ID"] for p in target.companies()[0]["PHONE"]]
    assert _result(rest(target, "crm.company.update", {"id": company, "fields": {"PHONE": [
        {"ID": ids[0], "DELETE": "Y"},
        {"ID": ids[1], "VALUE": ""},
        {"ID": ids[2], "VALUE": "999", "VALUE_TYPE": "MOBILE"},
        {"VALUE": "555"},
    ]}})) is True
    phones = _result(rest(target, "crm.company.get", {"id": company}))["PHONE"]
    assert [(p["VALUE"], p["VALUE_TYPE"]) for p in phones] == [
        ("999", "MOBILE"), ("444", "WORK"), ("555", "WORK")]
    assert phones[0]["ID"] == ids[2]
    # re-sending values without ids duplicates them (protocol doc §10)
    rest(target, "crm.company.update", {"id": company, "fields": {"PHONE": [{"VALUE": "999"}]}})
    assert [p["VALUE"] for p in target.companies()[0]["PHONE"]] == ["999", "444", "555", "999"]
    # an update without PHONE leaves the phones alone
    rest(target, "crm.company.update", {"id": company, "fields": {"TITLE": "Acme 2"}})
    assert len(target.companies()[0]["PHONE"]) == 4


def test_invalid_email_is_error_core(target, rest):
    reply = rest(target, "crm.contact.add", {"fields": {"EMAIL": [{"VALUE": "not-an-address"}]}})
    assert reply.status_code == 400
    assert reply.json()["error"] == "ERROR_CORE"
    assert target.contacts() == []


def test_list_filters_select_and_multifields(target, rest):
    a = target.add_contact({"NAME": "Anna", "PHONE": [{"VALUE": "100"}]})
    b = target.add_contact({"NAME": "Boris", "EMAIL": [{"VALUE": "b@example.com"}]})
    c = target.add_contact({"NAME": "Anton", "ORIGIN_ID": "x1"})

    def ids(params):
        return [int(r["ID"]) for r in _result(rest(target, "crm.contact.list", params))]

    assert ids({"filter": {"@ID": [a, c]}}) == [a, c]
    assert ids({"filter": {"ID": [b, c]}}) == [b, c]
    assert ids({"filter": {"%NAME": "an"}}) == [a, c]
    assert ids({"filter": {"=ORIGIN_ID": "x1"}}) == [c]
    assert ids({"filter": {"PHONE": "100"}}) == [a]
    assert ids({"filter": {"EMAIL": "b@example.com"}, "select": ["ID"]}) == [b]
    assert ids({"filter": {"NOPE": 1}, "order": {"NAME": "DESC"}}) == [b, c, a]
    rows = _result(rest(target, "crm.contact.list", {"order": {"ID": "ASC"}}))
    assert "NAME" in rows[0] and "PHONE" not in rows[0]  # '*' has no multi-fields
    rows = _result(rest(target, "crm.contact.list", {"select": ["ID", "PHONE"], "order": {"ID": "ASC"}}))
    assert rows[0]["PHONE"][0]["VALUE"] == "100" and set(rows[0]) == {"ID", "PHONE"}
    bad = rest(target, "crm.contact.list", {"filter": "x"})
    assert bad.status_code == 400 and bad.json()["error_description"] == "Parameter 'filter' must be array."


def test_list_pages_of_fifty(target, rest):
    for i in range(60):
        target.add_company({"TITLE": f"c{i}"})
    first = rest(target, "crm.company.list", {"select": ["ID"]}).json()
    assert len(first["result"]) == 50 and first["total"] == 60 and first["next"] == 50
    second = rest(target, "crm.company.list", {"select": ["ID"], "start": 50}).json()
    assert len(second["result"]) == 10 and "next" not in second


def test_uf_fields_on_companies(target, rest):
    target.add_client_field("company", "UF_CRM_SRC_COMPANY")
    company = _result(rest(target, "crm.company.add", {"fields": {"TITLE": "A", "UF_CRM_SRC_COMPANY": 42,
                                                                   "UF_CRM_UNDECLARED": "x"}}))
    got = _result(rest(target, "crm.company.get", {"id": company}))
    assert got["UF_CRM_SRC_COMPANY"] == "42" and "UF_CRM_UNDECLARED" not in got
    found = _result(rest(target, "crm.company.list", {"filter": {"=UF_CRM_SRC_COMPANY": "42"}}))
    assert [r["ID"] for r in found] == [str(company)]
    fields = _result(rest(target, "crm.company.fields"))
    assert fields["UF_CRM_SRC_COMPANY"]["isDynamic"] is True
    assert fields["PHONE"]["type"] == "crm_multifield" and fields["PHONE"]["isMultiple"] is True
    assert fields["ORIGIN_ID"]["type"] == "string"
    assert _result(rest(target, "crm.contact.fields"))["COMPANY_IDS"]["isMultiple"] is True


def test_contact_company_ids(target, rest):
    one, two = target.add_company({"TITLE": "1"}), target.add_company({"TITLE": "2"})
    contact = _result(rest(target, "crm.contact.add", {"fields": {"COMPANY_IDS": [two, one]}}))
    assert target.contacts()[0]["COMPANY_ID"] == str(two)
    rest(target, "crm.company.delete", {"id": two})
    assert _result(rest(target, "crm.contact.get", {"id": contact}))["COMPANY_ID"] == str(one)


def test_errors(target, rest):
    def err(method, params):
        reply = rest(target, method, params)
        assert reply.status_code == 400
        body = reply.json()
        return {"error": body["error"], "error_description": body["error_description"]}

    assert err("crm.company.get", {"id": 999}) == {"error": "", "error_description": "Not found"}
    assert err("crm.contact.get", {"id": 999}) == {"error": "", "error_description": "Not found"}
    assert err("crm.contact.get", {"id": "abc"})["error_description"] == "ID is not defined or invalid."
    assert err("crm.company.update", {"id": 999, "fields": {}})["error_description"] == "Company is not found"
    assert err("crm.contact.update", {"id": 999, "fields": {}})["error_description"] == "Contact is not found"
    assert err("crm.company.delete", {"id": 999})["error_description"] == "Company is not found"
    assert err("crm.contact.delete", {"id": 999}) == {"error": "ERROR_CORE", "error_description": "Element not found"}
    assert err("crm.company.add", {"fields": "x"})["error_description"] == "Parameter 'fields' must be array."


def test_delete_removes_record(target, rest):
    contact = target.add_contact({"NAME": "Gone"})
    assert _result(rest(target, "crm.contact.delete", {"id": contact})) is True
    assert target.contacts() == []


def test_batch_company_then_contact_by_reference(target, rest):
    add_company = "crm.company.add?" + build_query({"fields": {"TITLE": "Batch Co", "PHONE": [{"VALUE": "5"}]}})
    reply = rest(target, "batch", {"halt": 0, "cmd": {
        "co": add_company,
        "ct": "crm.contact.add?fields[NAME]=Bo&fields[COMPANY_ID]=$result[co]&fields[EMAIL][0][VALUE]=bo@x.io",
        "get": "crm.contact.get?id=$result[ct]",
        "list": "crm.company.list?filter[ID]=$result[co]&select[]=ID&select[]=PHONE",
        "missing": "crm.company.get?id=999999",
    }})
    body = _result(reply)
    company = body["result"]["co"]
    assert body["result"]["get"]["COMPANY_ID"] == str(company)
    assert body["result"]["get"]["EMAIL"][0]["VALUE"] == "bo@x.io"
    assert body["result"]["list"][0]["PHONE"][0]["VALUE"] == "5"
    assert body["result_total"] == {"list": 1}
    assert body["result_error"] == {"missing": {"error": "", "error_description": "Not found"}}
