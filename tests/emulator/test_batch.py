"""batch: sequential commands, $result references, error sections, halt, limits, faults."""

from __future__ import annotations

from urllib.parse import quote

import requests

from relay.phpquery import Ref, build_query


def test_references_chain_add_rows_and_read_back(target, rest):
    add = "crm.deal.add?" + build_query({"fields": {"TITLE": "Relayed", "CATEGORY_ID": 3}})
    rows = "crm.deal.productrows.set?" + build_query(
        {"id": Ref("deal"), "rows": [{"PRODUCT_NAME": "Router", "PRICE": 10, "QUANTITY": 3}]})
    reply = rest(target, "batch", {"halt": 0, "cmd": {
        "deal": add, "rows": rows,
        "get": "crm.deal.get?id=$result[deal]",
        "find": "crm.deal.list?filter[ID]=$result[deal]&select[]=ID&select[]=TITLE",
        "again": "crm.deal.get?id=$result[find][0][ID]",
        "title": "crm.deal.update?id=$result[deal]&fields[COMMENTS]=$result[get][TITLE]",
    }})
    assert reply.status_code == 200
    body = reply.json()["result"]
    deal_id = body["result"]["deal"]
    assert isinstance(deal_id, int)
    assert body["result"]["rows"] is True
    assert body["result"]["get"]["ID"] == str(deal_id)
    assert body["result"]["again"]["ID"] == str(deal_id)
    assert body["result_error"] == []
    assert body["result_total"] == {"find": 1}
    assert body["result_next"] == []
    assert set(body["result_time"]) == set(body["result"])
    assert "time" in reply.json()
    assert [r["QUANTITY"] for r in target.rows(deal_id)] == [3.0]
    assert target.deal(deal_id)["COMMENTS"] == "Relayed"
    assert target.count_requests("batch") == 1
    assert target.count_requests("crm.deal.get") == 2


def test_errors_go_to_result_error_with_http_200(source, rest):
    deal_id = source.add_deal({})
    reply = rest(source, "batch", {"cmd": {
        "ok": f"crm.deal.get?id={deal_id}",
        "missing": "crm.deal.get?id=999999",
        "bogus": "crm.nothing.here?id=1",
        "nested": "batch?cmd[a]=user.current",
        "after": "user.current",
    }})
    assert reply.status_code == 200
    body = reply.json()["result"]
    assert set(body["result"]) == {"ok", "after"}
    assert body["result_error"]["missing"] == {"error": "", "error_description": "Not found"}
    assert body["result_error"]["bogus"]["error"] == "ERROR_METHOD_NOT_FOUND"
    assert body["result_error"]["nested"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"
    assert body["result_total"] == [] and body["result_next"] == []


def test_halt_stops_at_first_failure(source, rest):
    reply = rest(source, "batch", {"halt": 1, "cmd": {
        "a": "crm.deal.add?fields[TITLE]=one",
        "b": "crm.deal.get?id=999999",
        "c": "crm.deal.add?fields[TITLE]=never",
    }})
    body = reply.json()["result"]
    assert list(body["result"]) == ["a"]
    assert list(body["result_error"]) == ["b"]
    assert [d["TITLE"] for d in source.deals()] == ["one"]


def test_list_cmd_gives_list_results_and_more_than_50_fail(source, rest):
    cmds = ["user.current"] * 52
    body = rest(source, "batch", {"cmd": cmds}).json()["result"]
    assert isinstance(body["result"], list) and len(body["result"]) == 50
    assert body["result_error"] == {
        "50": {"error": "ERROR_BATCH_LENGTH_EXCEEDED", "error_description": "Max batch length exceeded"},
        "51": {"error": "ERROR_BATCH_LENGTH_EXCEEDED", "error_description": "Max batch length exceeded"},
    }


def test_form_encoded_batch_with_double_encoding(source):
    deal_id = source.add_deal({"TITLE": "Form & more"})
    inner = "crm.deal.get?" + build_query({"id": deal_id})
    ref = "crm.deal.productrows.get?id=" + quote("$result[g][ID]", safe="")
    body = f"halt=0&cmd%5Bg%5D={quote(inner, safe='')}&cmd%5Br%5D={quote(ref, safe='')}"
    reply = requests.post(source.webhook_url + "batch.json", data=body, timeout=5,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    result = reply.json()["result"]
    assert result["result"]["g"]["TITLE"] == "Form & more"
    assert result["result"]["r"] == []
    assert result["result_error"] == []


def test_unresolvable_reference_becomes_empty(source, rest):
    body = rest(source, "batch", {"cmd": {"x": "crm.deal.get?id=$result[nothing][ID]"}}).json()["result"]
    assert body["result_error"]["x"]["error_description"] == "ID is not defined or invalid"


def test_command_error_fault_hits_only_that_command(source, rest):
    deal_id = source.add_deal({})
    source.inject("command_error", method="crm.deal.productrows.get", code="ERROR_CORE",
                  description="boom")
    body = rest(source, "batch", {"cmd": {
        "d": f"crm.deal.get?id={deal_id}", "r": f"crm.deal.productrows.get?id={deal_id}"}}).json()["result"]
    assert "d" in body["result"]
    assert body["result_error"] == {"r": {"error": "ERROR_CORE", "error_description": "boom"}}
    again = rest(source, "batch", {"cmd": {"r": f"crm.deal.productrows.get?id={deal_id}"}}).json()
    assert again["result"]["result_error"] == []  # consumed


def test_batch_counts_as_one_request_for_the_rate_limit(make_portal, rest):
    portal = make_portal(burst=2, rate=0.5)
    reply = rest(portal, "batch", {"cmd": ["user.current"] * 10})
    assert reply.status_code == 200
    assert 0.9 < portal.rate_level() <= 1.0
