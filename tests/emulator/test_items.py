"""crm.item.*: deals as camelCase views of crm.deal.* records, funnel moves, smart invoices, errors."""

from __future__ import annotations

from urllib.parse import parse_qsl

from relay.phpquery import build_query


def _item(reply):
    assert reply.status_code == 200, reply.text
    return reply.json()["result"]["item"]


def test_get_is_a_camel_case_view_of_the_deal(source, rest):
    deal_id = source.add_deal({"TITLE": "Router", "CATEGORY_ID": 1, "OPPORTUNITY": 250.5,
                               "UF_CRM_1700000000": 79, "COMPANY_ID": 12})
    item = _item(rest(source, "crm.item.get", {"entityTypeId": 2, "id": deal_id}))
    assert item["id"] == deal_id and item["title"] == "Router" and item["entityTypeId"] == 2
    assert item["categoryId"] == 1 and item["stageId"] == "C1:NEW" and item["opportunity"] == 250.5
    assert item["companyId"] == 12 and item["assignedById"] == 1 and item["contactIds"] == []
    assert item["currencyId"] == "RUB" and item["createdTime"] == source.deal(deal_id)["DATE_CREATE"]
    assert item["ufCrm_1700000000"] == 79  # "simplified" name conversion — universal/index.md
    original = _item(rest(source, "crm.item.get", {"entityTypeId": 2, "id": deal_id, "useOriginalUfNames": "Y"}))
    assert original["UF_CRM_1700000000"] == 79 and "ufCrm_1700000000" not in original


def test_add_update_list_share_records_with_crm_deal(source, rest):
    item = _item(rest(source, "crm.item.add", {"entityTypeId": 2, "fields": {
        "title": "Via item", "categoryId": 1, "stageId": "C1:PREPARATION", "opportunity": 99,
        "contactIds": [3, 4], "ufCrm_1700000000": 80}}))
    legacy = rest(source, "crm.deal.get", {"id": item["id"]}).json()["result"]
    assert legacy["TITLE"] == "Via item" and legacy["STAGE_ID"] == "C1:PREPARATION"
    assert legacy["UF_CRM_1700000000"] == "80" and legacy["CONTACT_ID"] == "3"
    assert item["contactIds"] == [3, 4]
    updated = _item(rest(source, "crm.item.update", {"entityTypeId": 2, "id": item["id"],
                                                     "fields": {"title": "Renamed", "bogus": 1}}))
    assert updated["title"] == "Renamed" and updated["stageId"] == "C1:PREPARATION"
    listed = rest(source, "crm.item.list", {"entityTypeId": 2, "filter": {"@id": [item["id"]]},
                                            "select": ["id", "title"]}).json()
    assert listed["result"]["items"] == [{"id": item["id"], "title": "Renamed"}] and listed["total"] == 1


def test_item_update_moves_funnel_deal_update_does_not(source, rest, receiver):
    source.bind_outgoing(receiver.url + "/hook", ["ONCRMDEALUPDATE", "ONCRMDEALMOVETOCATEGORY"],
                         include_rest=True)
    deal_id = source.add_deal({"TITLE": "t"})
    rest(source, "crm.deal.update", {"id": deal_id, "fields": {"CATEGORY_ID": 1}})
    assert source.deal(deal_id)["CATEGORY_ID"] == "0"  # crm-deal-update.md: funnel is immutable here
    moved = _item(rest(source, "crm.item.update", {"entityTypeId": 2, "id": deal_id,
                                                   "fields": {"categoryId": 1, "stageId": "C1:EXECUTING"}}))
    assert (moved["categoryId"], moved["stageId"]) == (1, "C1:EXECUTING")
    assert source.deal(deal_id)["STAGE_ID"] == "C1:EXECUTING"
    default_stage = _item(rest(source, "crm.item.update", {"entityTypeId": 2, "id": deal_id,
                                                           "fields": {"categoryId": 0}}))
    assert default_stage["stageId"] == "NEW"
    receiver.wait(3)
    source.wait_deliveries()
    events = [dict(parse_qsl(c.body.decode()))["event"] for c in receiver.calls]
    assert sorted(events) == ["ONCRMDEALMOVETOCATEGORY", "ONCRMDEALMOVETOCATEGORY", "ONCRMDEALUPDATE"]
    wrong = rest(source, "crm.item.update", {"entityTypeId": 2, "id": deal_id,
                                             "fields": {"categoryId": 1, "stageId": "C9:NEW"}})
    assert wrong.status_code == 400 and wrong.json()["error"] == "CRM_FIELD_ERROR_VALUE_NOT_VALID"


def test_not_found_errors(source, rest):
    for method, extra in (("crm.item.get", {}), ("crm.item.update", {"fields": {"title": "x"}}),
                          ("crm.item.delete", {})):
        reply = rest(source, method, {"entityTypeId": 2, "id": 999999, **extra})
        assert reply.status_code == 400 and reply.json()["error"] == "NOT_FOUND", method
    reply = rest(source, "crm.item.get", {"entityTypeId": 777, "id": 1})
    assert reply.status_code == 400 and reply.json()["error"] == "NOT_FOUND"
    bad = rest(source, "crm.item.list", {"entityTypeId": 2, "filter": {"NOPE": 1}})
    assert bad.status_code == 400 and bad.json()["error"] == "INVALID_ARG_VALUE"


def test_delete_item_removes_deal(source, rest):
    deal_id = source.add_deal({})
    reply = rest(source, "crm.item.delete", {"entityTypeId": 2, "id": deal_id})
    assert reply.status_code == 200 and reply.json()["result"] == []
    assert source.deal(deal_id) is None


def test_smart_invoices_have_categories_stages_and_own_records(source, rest):
    cats = rest(source, "crm.category.list", {"entityTypeId": 31}).json()["result"]["categories"]
    assert cats and cats[0]["entityTypeId"] == 31 and cats[0]["isDefault"] == "Y"
    cat = cats[0]["id"]
    stages = rest(source, "crm.status.list", {"filter": {"ENTITY_ID": f"SMART_INVOICE_STAGE_{cat}"}}).json()
    stage_ids = [s["STATUS_ID"] for s in stages["result"]]
    assert stage_ids[0] == f"DT31_{cat}:N"
    deal_cats = rest(source, "crm.category.list", {"entityTypeId": 2}).json()["result"]["categories"]
    assert [c["id"] for c in deal_cats] == [0, 1]
    inv = _item(rest(source, "crm.item.add", {"entityTypeId": 31, "fields": {
        "title": "INV-1", "opportunity": 120, "currencyId": "USD", "parentId2": 5}}))
    assert inv["entityTypeId"] == 31 and inv["categoryId"] == cat and inv["stageId"] == stage_ids[0]
    paid = _item(rest(source, "crm.item.update", {"entityTypeId": 31, "id": inv["id"],
                                                  "fields": {"stageId": f"DT31_{cat}:P"}}))
    assert paid["stageSemanticId"] == "S" and paid["title"] == "INV-1"
    assert rest(source, "crm.item.get", {"entityTypeId": 2, "id": inv["id"]}).json().get("error") == "NOT_FOUND"
    listed = rest(source, "crm.item.list", {"entityTypeId": 31, "filter": {"currencyId": "USD"}}).json()
    assert [i["id"] for i in listed["result"]["items"]] == [inv["id"]]
    bad = rest(source, "crm.item.update", {"entityTypeId": 31, "id": inv["id"], "fields": {"stageId": "NEW"}})
    assert bad.json()["error"] == "CRM_FIELD_ERROR_VALUE_NOT_VALID"


def test_items_in_batch_with_failures(source, rest):
    deal_id = source.add_deal({"TITLE": "in batch"})
    reply = rest(source, "batch", {"halt": 0, "cmd": {
        "get": f"crm.item.get?entityTypeId=2&id={deal_id}",
        "missing": "crm.item.get?entityTypeId=2&id=999999",
        "move": "crm.item.update?" + build_query({"entityTypeId": 2, "id": deal_id,
                                                  "fields": {"categoryId": 1}}),
        "list": "crm.item.list?" + build_query({"entityTypeId": 2, "filter": {"categoryId": 1},
                                                "select": ["id"]}),
    }})
    body = reply.json()["result"]
    assert body["result"]["get"]["item"]["title"] == "in batch"
    assert body["result_error"]["missing"]["error"] == "NOT_FOUND"
    assert body["result"]["move"]["item"]["stageId"] == "C1:NEW"
    assert body["result"]["list"]["items"] == [{"id": deal_id}] and body["result_total"]["list"] == 1


def test_uf_name_conversion_table_from_the_docs():
    from relay.emulator.itemfields import uf_camel

    table = {"UF_CRM_3_DIGIT": "ufCrm3Digit", "UF_CRM_3_1747309727": "ufCrm3_1747309727",
             "UF_CRM_3_DIGIT10": "ufCrm_3_DIGIT10", "UF_CRM_3_DIGIT_10": "ufCrm_3_DIGIT_10",
             "UF_CRM_1747309879": "ufCrm_1747309879", "UF_CRM_10_5186744711": "ufCrm10_5186744711",
             "UF_CRM_SOURCE_DEAL": "ufCrmSourceDeal"}
    assert {k: uf_camel(k) for k in table} == table
