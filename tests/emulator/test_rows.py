"""crm.deal.productrows.get/set: replace-all semantics, numeric typing, catalog checks."""

from __future__ import annotations

from urllib.parse import urlencode

import requests


def test_set_replaces_all_rows_and_get_returns_numbers(source, rest):
    deal_id = source.add_deal({"CATEGORY_ID": 1}, rows=[
        {"PRODUCT_NAME": "old 1", "PRICE": 1}, {"PRODUCT_NAME": "old 2", "PRICE": 2}])
    reply = rest(source, "crm.deal.productrows.set", {"id": deal_id, "rows": [
        {"PRODUCT_ID": 15, "PRICE": "250.50", "QUANTITY": "2"},
        {"PRODUCT_NAME": "Custom work", "PRICE": 100}]})
    assert reply.status_code == 200 and reply.json()["result"] is True
    got = rest(source, "crm.deal.productrows.get", {"id": deal_id}).json()["result"]
    assert [r["PRODUCT_NAME"] for r in got] == ["Router X100", "Custom work"]
    first, second = got
    assert first["PRICE"] == 250.5 and isinstance(first["PRICE"], float)
    assert first["QUANTITY"] == 2 and isinstance(first["QUANTITY"], (int, float))
    assert first["PRODUCT_ID"] == 15 and first["OWNER_ID"] == deal_id and first["OWNER_TYPE"] == "D"
    assert second["PRODUCT_ID"] == 0 and second["QUANTITY"] == 1
    for key in ("ID", "PRICE_EXCLUSIVE", "PRICE_NETTO", "PRICE_BRUTTO", "DISCOUNT_TYPE_ID",
                "DISCOUNT_RATE", "DISCOUNT_SUM", "TAX_RATE", "TAX_INCLUDED", "MEASURE_CODE",
                "MEASURE_NAME", "SORT"):
        assert key in first
    assert source.deal(deal_id)["OPPORTUNITY"] == "601.00"  # 250.5*2 + 100


def test_empty_or_absent_rows_clear(source, rest):
    deal_id = source.add_deal({}, rows=[{"PRODUCT_NAME": "x", "PRICE": 5}])
    assert rest(source, "crm.deal.productrows.set", {"id": deal_id, "rows": []}).status_code == 200
    assert source.rows(deal_id) == []
    source.set_rows(deal_id, [{"PRODUCT_NAME": "y", "PRICE": 5}])
    assert rest(source, "crm.deal.productrows.set", {"id": deal_id}).status_code == 200
    assert rest(source, "crm.deal.productrows.get", {"id": deal_id}).json()["result"] == []


def test_unknown_product_is_error_core_and_leaves_rows(source, rest):
    deal_id = source.add_deal({}, rows=[{"PRODUCT_NAME": "keep", "PRICE": 5}])
    reply = rest(source, "crm.deal.productrows.set",
                 {"id": deal_id, "rows": [{"PRODUCT_ID": 301, "PRICE": 1}]})
    assert reply.status_code == 400
    assert reply.json()["error"] == "ERROR_CORE"
    assert reply.json()["error_description"] == "Product is not found"
    assert [r["PRODUCT_NAME"] for r in source.rows(deal_id)] == ["keep"]


def test_rows_of_missing_deal_are_not_found(source, rest):
    for method in ("crm.deal.productrows.get", "crm.deal.productrows.set"):
        reply = rest(source, method, {"id": 987654, "rows": []})
        assert reply.status_code == 400 and reply.json()["error_description"] == "Not found"


def test_form_encoded_rows_are_stored_as_numbers(source):
    deal_id = source.add_deal({})
    body = urlencode({"id": deal_id, "rows[0][PRODUCT_NAME]": "Cable", "rows[0][PRICE]": "12.5",
                      "rows[0][QUANTITY]": "4", "rows[0][DISCOUNT_TYPE_ID]": "1",
                      "rows[0][DISCOUNT_SUM]": "2.5", "rows[0][TAX_RATE]": "20"})
    reply = requests.post(source.webhook_url + "crm.deal.productrows.set", data=body, timeout=5,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 200
    row = source.rows(deal_id)[0]
    assert row["PRICE"] == 12.5 and row["QUANTITY"] == 4.0 and row["TAX_RATE"] == 20.0
    assert row["DISCOUNT_TYPE_ID"] == 1 and row["DISCOUNT_SUM"] == 2.5
    assert row["PRICE_NETTO"] == round(12.5 / 1.2 + 2.5, 2)
