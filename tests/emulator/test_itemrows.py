"""crm.item.productrow.list/set: required owner filter, id arrays, 50 per page, same rows as deals."""

from __future__ import annotations

from relay.phpquery import build_query


def test_list_needs_owner_type_and_id(source, rest):
    deal_id = source.add_deal({}, rows=[{"PRODUCT_NAME": "x", "PRICE": 1}])
    for flt in ({"=ownerId": deal_id}, {"=ownerType": "D"}, {"ownerType": "D", "ownerId": deal_id}):
        reply = rest(source, "crm.item.productrow.list", {"filter": flt})
        assert reply.status_code == 400 and reply.json()["error"] == "REQUIRED_ARG_MISSING", flt
    reply = rest(source, "crm.item.productrow.list", {})
    assert reply.status_code == 400 and reply.json()["error"] == "100"


def test_list_many_deals_camel_case_and_pages(source, rest):
    a = source.add_deal({}, rows=[{"PRODUCT_ID": 15, "PRICE": "250.5", "QUANTITY": 2, "SORT": 20},
                                  {"PRODUCT_NAME": "Work", "PRICE": 100, "SORT": 10}])
    b = source.add_deal({}, rows=[{"PRODUCT_NAME": f"r{i}", "PRICE": i} for i in range(60)])
    other = source.add_deal({}, rows=[{"PRODUCT_NAME": "not asked", "PRICE": 1}])
    one = rest(source, "crm.item.productrow.list", {"filter": {"=ownerType": "D", "=ownerId": a}}).json()
    rows = one["result"]["productRows"]
    assert [r["productName"] for r in rows] == ["Work", "Router X100"]  # sort ascending by default
    row = rows[1]
    assert row["ownerId"] == a and row["ownerType"] == "D" and row["productId"] == 15
    assert row["price"] == 250.5 and row["quantity"] == 2 and one["total"] == 2
    assert set(row) >= {"id", "priceExclusive", "priceNetto", "priceBrutto", "discountTypeId", "taxIncluded",
                        "measureCode", "sort", "xmlId", "type"}
    flt = {"=ownerType": "D", "=ownerId": [a, b]}
    first = rest(source, "crm.item.productrow.list", {"filter": flt}).json()
    assert len(first["result"]["productRows"]) == 50 and first["total"] == 62 and first["next"] == 50
    second = rest(source, "crm.item.productrow.list", {"filter": flt, "start": 50}).json()
    got = first["result"]["productRows"] + second["result"]["productRows"]
    assert {r["ownerId"] for r in got} == {a, b} and len({r["id"] for r in got}) == 62
    assert other not in {r["ownerId"] for r in got}
    ids = [r["id"] for r in rows]
    picked = rest(source, "crm.item.productrow.list",
                  {"filter": {"=ownerType": "D", "=ownerId": a, "@id": ids[:1]}}).json()
    assert [r["id"] for r in picked["result"]["productRows"]] == ids[:1]


def test_set_replaces_the_deal_rows_seen_by_legacy_methods(source, rest):
    deal_id = source.add_deal({}, rows=[{"PRODUCT_NAME": "old", "PRICE": 1}])
    reply = rest(source, "crm.item.productrow.set", {"ownerType": "D", "ownerId": deal_id, "productRows": [
        {"productName": "New", "price": 10, "quantity": 3, "taxRate": 20, "taxIncluded": "Y"}]})
    assert reply.status_code == 200
    assert [r["productName"] for r in reply.json()["result"]["productRows"]] == ["New"]
    legacy = rest(source, "crm.deal.productrows.get", {"id": deal_id}).json()["result"]
    assert [(r["PRODUCT_NAME"], r["QUANTITY"], r["TAX_INCLUDED"]) for r in legacy] == [("New", 3.0, "Y")]
    assert source.deal(deal_id)["OPPORTUNITY"] == "30.00"


def test_set_errors(source, rest):
    deal_id = source.add_deal({})
    missing = rest(source, "crm.item.productrow.set", {"ownerType": "D", "ownerId": 999999, "productRows": []})
    assert missing.status_code == 400 and missing.json()["error"] == "OWNER_NOT_FOUND"
    odd = rest(source, "crm.item.productrow.set", {"ownerType": "ZZ", "ownerId": deal_id, "productRows": []})
    assert odd.json()["error"] == "ENTITY_TYPE_NOT_SUPPORTED"
    no_owner = rest(source, "crm.item.productrow.set", {"ownerId": deal_id, "productRows": []})
    assert no_owner.json()["error"] == "100"


def test_smart_invoice_rows_and_owner_type_from_enum(source, rest):
    types = rest(source, "crm.enum.ownertype").json()["result"]
    short = next(t["SYMBOL_CODE_SHORT"] for t in types if t["ID"] == 31)
    assert short == "SI"
    invoice = rest(source, "crm.item.add", {"entityTypeId": 31, "fields": {"title": "Inv"}}).json()["result"]["item"]
    reply = rest(source, "crm.item.productrow.set", {"ownerType": short, "ownerId": invoice["id"],
                                                     "productRows": [{"productName": "A", "price": 5, "quantity": 2}]})
    assert reply.status_code == 200 and reply.json()["result"]["productRows"][0]["ownerType"] == "SI"
    listed = rest(source, "crm.item.productrow.list",
                  {"filter": {"=ownerType": "SI", "=ownerId": invoice["id"]}}).json()["result"]["productRows"]
    assert [r["productName"] for r in listed] == ["A"]
    got = rest(source, "crm.item.get", {"entityTypeId": 31, "id": invoice["id"]}).json()["result"]["item"]
    assert got["opportunity"] == 10.0


def test_rows_in_batch_with_failure(source, rest):
    deal_id = source.add_deal({}, rows=[{"PRODUCT_NAME": "x", "PRICE": 1}])
    ok = "crm.item.productrow.list?" + build_query({"filter": {"=ownerType": "D", "=ownerId": [deal_id]}})
    bad = "crm.item.productrow.list?" + build_query({"filter": {"=ownerType": "D"}})
    reply = rest(source, "batch", {"cmd": {"ok": ok, "bad": bad}})
    body = reply.json()["result"]
    assert [r["productName"] for r in body["result"]["ok"]["productRows"]] == ["x"]
    assert body["result_total"]["ok"] == 1
    assert body["result_error"]["bad"]["error"] == "REQUIRED_ARG_MISSING"
