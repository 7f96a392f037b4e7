"""crm.deal.get/add/update/delete/fields over real HTTP: typing, defaults, validation, not-found."""

from __future__ import annotations

import re

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")


def test_get_returns_strings_nulls_and_iso_dates(source, rest):
    deal_id = source.add_deal({"TITLE": "Router", "CATEGORY_ID": 1, "OPPORTUNITY": 1000,
                               "UF_CRM_1700000000": 79, "ASSIGNED_BY_ID": 5})
    reply = rest(source, "crm.deal.get", {"id": deal_id})
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    deal = reply.json()["result"]
    assert deal["ID"] == str(deal_id)
    assert deal["OPPORTUNITY"] == "1000.00"
    assert deal["CATEGORY_ID"] == "1"
    assert deal["STAGE_ID"] == "C1:NEW"
    assert deal["ASSIGNED_BY_ID"] == "5"
    assert deal["UF_CRM_1700000000"] == "79"
    assert deal["COMPANY_ID"] is None and deal["LEAD_ID"] is None
    assert ISO.match(deal["DATE_CREATE"]) and ISO.match(deal["BEGINDATE"])
    assert deal["OPENED"] == "Y" and deal["CLOSED"] == "N" and deal["STAGE_SEMANTIC_ID"] == "P"
    assert all(isinstance(v, (str, type(None))) for v in deal.values())


def test_get_accepts_upper_case_id_and_string_id(source, rest):
    deal_id = source.add_deal({"TITLE": "x"})
    assert rest(source, "crm.deal.get", {"ID": str(deal_id)}).json()["result"]["TITLE"] == "x"


def test_missing_deal_is_400_with_empty_code(source, rest):
    reply = rest(source, "crm.deal.get", {"id": 999999})
    assert reply.status_code == 400
    body = reply.json()
    assert body["error"] == "" and body["error_description"] == "Not found"
    assert "time" in body


def test_invalid_or_absent_id(source, rest):
    for params in ({}, {"id": "abc"}, {"id": 0}):
        reply = rest(source, "crm.deal.get", params)
        assert reply.status_code == 400
        assert reply.json() | {"time": None} == {
            "error": "", "error_description": "ID is not defined or invalid", "time": None}


def test_add_returns_int_id_and_applies_defaults(source, rest):
    reply = rest(source, "crm.deal.add", {"fields": {"OPPORTUNITY": "50.5"}})
    assert reply.status_code == 200
    new_id = reply.json()["result"]
    assert isinstance(new_id, int)
    deal = source.deal(new_id)
    assert deal["TITLE"] == f"Deal #{new_id}"
    assert deal["CATEGORY_ID"] == "0" and deal["STAGE_ID"] == "NEW"
    assert deal["OPPORTUNITY"] == "50.50" and deal["CURRENCY_ID"] == "RUB"
    assert deal["ASSIGNED_BY_ID"] == "1" and deal["CREATED_BY_ID"] == "1" and deal["OPENED"] == "Y"


def test_add_ignores_unknown_and_read_only_fields(target, rest):
    reply = rest(target, "crm.deal.add", {"fields": {
        "TITLE": "t", "CATEGORY_ID": 3, "NO_SUCH_FIELD": "x", "title": "lower", "UF_CRM_UNKNOWN": 1,
        "DATE_CREATE": "2001-01-01T00:00:00+03:00", "UF_CRM_SOURCE_DEAL": "7405", "ORIGIN_ID": "7405"}})
    deal = target.deal(reply.json()["result"])
    assert deal["TITLE"] == "t"
    assert "NO_SUCH_FIELD" not in deal and "UF_CRM_UNKNOWN" not in deal and "title" not in deal
    assert not deal["DATE_CREATE"].startswith("2001")
    assert deal["UF_CRM_SOURCE_DEAL"] == "7405" and deal["ORIGIN_ID"] == "7405"


def test_add_validation_errors(target, rest):
    cases = [
        ({"CATEGORY_ID": 3, "STAGE_ID": "C9:XYZ"}, "Stage 'C9:XYZ' is not found in category 3"),
        ({"STAGE_ID": "C3:NEW"}, "Stage 'C3:NEW' is not found in category 0"),
        ({"CATEGORY_ID": 7}, "Category '7' is not found"),
        ({"ASSIGNED_BY_ID": 5}, "User with ID '5' is not found"),
        ({"CATEGORY_ID": 3, "UF_CRM_DELIVERY": 79}, "UF_CRM_DELIVERY"),
    ]
    before = len(target.deals())
    for fields, text in cases:
        reply = rest(target, "crm.deal.add", {"fields": fields})
        assert reply.status_code == 400, fields
        assert reply.json()["error"] == ""
        assert text in reply.json()["error_description"]
    assert len(target.deals()) == before


def test_update_changes_only_given_fields_and_keeps_category(target, rest):
    deal_id = target.add_deal({"TITLE": "old", "CATEGORY_ID": 3, "COMMENTS": "keep",
                               "DATE_MODIFY": "2020-01-01T00:00:00+03:00"})
    reply = rest(target, "crm.deal.update", {"id": deal_id, "fields": {
        "TITLE": "new", "CATEGORY_ID": 0, "STAGE_ID": "C3:WON", "UF_CRM_DELIVERY": "113"}})
    assert reply.status_code == 200 and reply.json()["result"] is True
    deal = target.deal(deal_id)
    assert deal["TITLE"] == "new" and deal["COMMENTS"] == "keep"
    assert deal["CATEGORY_ID"] == "3" and deal["STAGE_ID"] == "C3:WON"
    assert deal["STAGE_SEMANTIC_ID"] == "S" and deal["CLOSED"] == "Y"
    assert deal["UF_CRM_DELIVERY"] == "113"
    assert not deal["DATE_MODIFY"].startswith("2020")


def test_update_validation_and_not_found(target, rest):
    deal_id = target.add_deal({"CATEGORY_ID": 3})
    bad = rest(target, "crm.deal.update", {"id": deal_id, "fields": {"STAGE_ID": "WON"}})
    assert bad.status_code == 400 and "not found in category 3" in bad.json()["error_description"]
    assert target.deal(deal_id)["STAGE_ID"] == "C3:NEW"
    missing = rest(target, "crm.deal.update", {"id": 424242, "fields": {"TITLE": "x"}})
    assert missing.status_code == 400 and missing.json()["error_description"] == "Not found"


def test_delete_then_get_is_not_found(source, rest):
    deal_id = source.add_deal({"TITLE": "bye"}, rows=[{"PRODUCT_NAME": "x", "PRICE": 1}])
    assert rest(source, "crm.deal.delete", {"id": deal_id}).json()["result"] is True
    assert rest(source, "crm.deal.get", {"id": deal_id}).status_code == 400
    assert source.deal(deal_id) is None and source.rows(deal_id) == []


def test_fields_describes_standard_and_custom_fields(target, rest):
    fields = rest(target, "crm.deal.fields").json()["result"]
    assert fields["ID"]["isReadOnly"] is True
    assert fields["CATEGORY_ID"]["isImmutable"] is True
    assert fields["STAGE_ID"]["statusType"] == "DEAL_STAGE"
    uf = fields["UF_CRM_DELIVERY"]
    assert uf["isDynamic"] is True and uf["type"] == "enumeration" and uf["title"] == "UF_CRM_DELIVERY"
    assert uf["items"] == [{"ID": "112", "VALUE": "Courier"}, {"ID": "113", "VALUE": "Pickup"}]
    assert fields["UF_CRM_SOURCE_DEAL"]["type"] == "string"


def test_seeding_can_backdate_and_user_edit_moves_stage(source):
    deal_id = source.add_deal({"CATEGORY_ID": 1, "DATE_CREATE": "2024-08-30T14:29:00+02:00",
                               "DATE_MODIFY": "2024-08-30T14:29:00+02:00"})
    assert source.deal(deal_id)["DATE_CREATE"] == "2024-08-30T14:29:00+02:00"
    source.update_deal(deal_id, {"STAGE_ID": "C1:LOSE"}, by_user=5)
    deal = source.deal(deal_id)
    assert deal["STAGE_SEMANTIC_ID"] == "F" and deal["MOVED_BY_ID"] == "5" and deal["MODIFY_BY_ID"] == "5"
    assert not deal["DATE_MODIFY"].startswith("2024")
