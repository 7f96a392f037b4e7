"""What landing 1C documents on the ESB portal needs: smart invoices and their rows, currencies,
units, catalog products by XML_ID, companies with requisites, stamps on deals."""

from __future__ import annotations

import pytest
import requests

from relay.phpquery import build_query


def _ok(reply):
    assert reply.status_code == 200, reply.text
    return reply.json()


def _item(reply):
    return _ok(reply)["result"]["item"]


def _error(reply):
    assert reply.status_code == 400, reply.text
    return reply.json()["error"]


def _invoice_stages(portal, rest):
    cats = _ok(rest(portal, "crm.category.list", {"entityTypeId": 31}))["result"]["categories"]
    cat = next(c["id"] for c in cats if c["isDefault"] == "Y")
    rows = _ok(rest(portal, "crm.status.list", {"filter": {"ENTITY_ID": f"SMART_INVOICE_STAGE_{cat}"}}))["result"]
    return cat, [r["STATUS_ID"] for r in rows]


# -- smart invoices ---------------------------------------------------------------------------------

def test_smart_invoice_add_get_update_delete(target, rest):
    company = target.add_company({"TITLE": "ТОВ Ромашка"})
    cat, stages = _invoice_stages(target, rest)
    assert stages[0] == f"DT31_{cat}:N" and f"DT31_{cat}:P" in stages  # crm-item-add.md: 'DT31_13:N' = 'New'
    inv = _item(rest(target, "crm.item.add", {"entityTypeId": 31, "fields": {
        "title": "Рахунок 00017", "accountNumber": "00017", "begindate": "2024-01-15T10:30:00",
        "closedate": "2024-01-25", "opportunity": 1234.5, "currencyId": "UAH", "companyId": company,
        "categoryId": cat, "stageId": stages[1], "comments": "з 1С", "xmlId": "b24relay:1c.main:0001",
        "assignedById": 17, "isManualOpportunity": "Y"}}))
    assert inv["entityTypeId"] == 31 and inv["title"] == "Рахунок 00017" and inv["accountNumber"] == "00017"
    assert inv["begindate"] == "2024-01-15T00:00:00+03:00" and inv["closedate"] == "2024-01-25T00:00:00+03:00"
    assert (inv["opportunity"], inv["currencyId"], inv["companyId"]) == (1234.5, "UAH", company)
    assert (inv["categoryId"], inv["stageId"], inv["stageSemanticId"]) == (cat, stages[1], "P")
    assert (inv["comments"], inv["xmlId"], inv["assignedById"], inv["isManualOpportunity"]) == (
        "з 1С", "b24relay:1c.main:0001", 17, "Y")
    got = _item(rest(target, "crm.item.get", {"entityTypeId": 31, "id": inv["id"]}))
    assert got == inv
    paid = _item(rest(target, "crm.item.update", {"entityTypeId": 31, "id": inv["id"], "fields": {
        "stageId": f"DT31_{cat}:P", "opportunity": 99}}))
    assert paid["stageSemanticId"] == "S" and paid["previousStageId"] == stages[1] and paid["opportunity"] == 99.0
    assert paid["title"] == "Рахунок 00017" and paid["xmlId"] == "b24relay:1c.main:0001"
    bad = rest(target, "crm.item.update", {"entityTypeId": 31, "id": inv["id"], "fields": {"currencyId": "XXX"}})
    assert _error(bad) == "CRM_FIELD_ERROR_VALUE_NOT_VALID"
    assert _ok(rest(target, "crm.item.delete", {"entityTypeId": 31, "id": inv["id"]}))["result"] == []
    assert _error(rest(target, "crm.item.get", {"entityTypeId": 31, "id": inv["id"]})) == "NOT_FOUND"
    assert target.items(31) == []


def test_invoice_defaults_follow_crm_item_add(target, rest):
    inv = _item(rest(target, "crm.item.add", {"entityTypeId": 31, "fields": {}}))
    _cat, stages = _invoice_stages(target, rest)
    assert inv["title"] == f"Invoice #{inv['id']}" and inv["stageId"] == stages[0]
    assert inv["xmlId"] is None and inv["currencyId"] == target.config.currency and inv["opened"] == "Y"


def test_invoices_found_by_xml_id_with_eq_and_in(target, rest):
    ids = {}
    for code in ("b24relay:1c.main:A", "b24relay:1c.main:B", "000123", "123"):
        ids[code] = _item(rest(target, "crm.item.add", {"entityTypeId": 31, "fields": {"xmlId": code}}))["id"]

    def found(flt):
        reply = _ok(rest(target, "crm.item.list", {"entityTypeId": 31, "filter": flt, "select": ["id", "xmlId"]}))
        return sorted(i["id"] for i in reply["result"]["items"])

    assert found({"=xmlId": "b24relay:1c.main:A"}) == [ids["b24relay:1c.main:A"]]
    assert found({"@xmlId": ["b24relay:1c.main:A", "b24relay:1c.main:B", "nope"]}) == sorted(
        [ids["b24relay:1c.main:A"], ids["b24relay:1c.main:B"]])
    assert found({"=xmlId": "000123"}) == [ids["000123"]]  # a code, not a number
    assert found({"@xmlId": ["123"]}) == [ids["123"]]


def test_invoices_have_no_origin_stamp_fields(target, rest):
    """object-fields.md lists originatorId/originId for leads, deals, contacts, companies only."""
    inv = _item(rest(target, "crm.item.add", {"entityTypeId": 31, "fields": {
        "title": "stamped", "originatorId": "b24relay:1c.main", "originId": "0001"}}))
    assert "originatorId" not in inv and "originId" not in inv
    for flt in ({"=originatorId": "b24relay:1c.main"}, {"@originId": ["0001"]}):
        reply = rest(target, "crm.item.list", {"entityTypeId": 31, "filter": flt})
        assert _error(reply) == "INVALID_ARG_VALUE", flt
        assert "not allowed in filter" in reply.json()["error_description"]


def test_deals_found_by_origin_stamp(target, rest):
    stamp = {"originatorId": "b24relay:1c.main", "originId": "0007"}
    deal = _item(rest(target, "crm.item.add", {"entityTypeId": 2, "fields": {"title": "from 1C", **stamp}}))
    other = _item(rest(target, "crm.item.add", {"entityTypeId": 2, "fields": {
        "title": "other base", "originatorId": "b24relay:1c.other", "originId": "0007"}}))
    assert (deal["originatorId"], deal["originId"]) == ("b24relay:1c.main", "0007")
    reply = _ok(rest(target, "crm.item.list", {"entityTypeId": 2, "filter": {
        "=originatorId": "b24relay:1c.main", "@originId": ["0007", "0008"]},
        "select": ["id", "originatorId", "originId"], "order": {"id": "ASC"}}))
    assert reply["result"]["items"] == [{"id": deal["id"], **stamp}] and other["id"] != deal["id"]
    assert target.deal(deal["id"])["ORIGIN_ID"] == "0007"


def test_deal_item_list_by_ids_with_contact_ids(target, rest):
    a = target.add_contact({"NAME": "A"})
    b = target.add_contact({"NAME": "B"})
    d1 = target.add_deal({"TITLE": "one", "CONTACT_IDS": [a, b]})
    d2 = target.add_deal({"TITLE": "two"})
    target.add_deal({"TITLE": "not asked"})
    reply = _ok(rest(target, "crm.item.list", {"entityTypeId": 2, "filter": {"@id": [d1, d2]},
                                               "select": ["id", "contactIds"]}))
    assert reply["result"]["items"] == [{"id": d1, "contactIds": [a, b]}, {"id": d2, "contactIds": []}]


# -- product rows of invoices -----------------------------------------------------------------------

def test_invoice_rows_with_owner_type_from_enum_and_catalog_products(target, rest):
    short = next(t["SYMBOL_CODE_SHORT"] for t in _ok(rest(target, "crm.enum.ownertype"))["result"] if t["ID"] == 31)
    assert short == "SI"
    product = target.add_product("Папір А4", 150.0, "КТ-0042")
    auto = _item(rest(target, "crm.item.add", {"entityTypeId": 31, "fields": {"title": "auto"}}))
    manual = _item(rest(target, "crm.item.add", {"entityTypeId": 31, "fields": {
        "title": "manual", "opportunity": 1, "isManualOpportunity": "Y"}}))
    rows = [{"productId": product, "price": 150, "quantity": 4, "measureCode": 796, "measureName": "шт"},
            {"productName": "Доставка", "price": 50, "quantity": 1}]
    for inv in (auto, manual):
        reply = _ok(rest(target, "crm.item.productrow.set", {"ownerType": short, "ownerId": inv["id"],
                                                              "productRows": rows}))
        assert [r["ownerType"] for r in reply["result"]["productRows"]] == ["SI", "SI"]
    listed = _ok(rest(target, "crm.item.productrow.list", {"filter": {"=ownerType": "SI",
                                                                      "=ownerId": [auto["id"], manual["id"]]}}))
    assert listed["total"] == 4
    mine = target.item_rows(31, auto["id"])
    assert [(r["productId"], r["productName"], r["quantity"], r["measureCode"]) for r in mine] == [
        (product, "Папір А4", 4.0, 796), (0, "Доставка", 1.0, 796)]
    items = {i["id"]: i for i in target.items(31)}
    assert items[auto["id"]]["opportunity"] == 650.0 and items[manual["id"]]["opportunity"] == 1.0
    assert target.item_rows(31, 999999) == [] and target.item_rows(2, 999999) == []
    bad = rest(target, "crm.item.productrow.set", {"ownerType": "SI", "ownerId": auto["id"],
                                                   "productRows": [{"productId": 987654, "price": 1}]})
    assert _error(bad) == "ERROR_CORE"


def test_invoice_and_rows_in_one_batch_like_the_relay(target, rest):
    add = build_query({"entityTypeId": 31, "fields": {"title": "batch", "xmlId": "k-1", "currencyId": "USD"}})
    rows = build_query({"ownerType": "SI", "ownerId": "$result[a0][item][id]",
                        "productRows": [{"productName": "X", "price": 2.5, "quantity": 2}]})
    body = _ok(rest(target, "batch", {"halt": 0, "cmd": {"a0": "crm.item.add?" + add,
                                                         "r0": "crm.item.productrow.set?" + rows}}))["result"]
    assert body["result_error"] == []
    inv_id = body["result"]["a0"]["item"]["id"]
    assert body["result"]["r0"]["productRows"][0]["ownerId"] == inv_id
    assert [i["opportunity"] for i in target.items(31)] == [5.0]


def test_item_helpers_return_copies(target, rest):
    inv = _item(rest(target, "crm.item.add", {"entityTypeId": 31, "fields": {"title": "orig"}}))
    deal_id = target.add_deal({"TITLE": "d"}, rows=[{"PRODUCT_NAME": "r", "PRICE": 3}])
    target.items(31)[0]["title"] = "changed"
    target.items(31)[0]["contactIds"].append(5)
    assert target.items(31)[0]["title"] == "orig" and target.items(31)[0]["contactIds"] == []
    assert [d["id"] for d in target.items(2)] == [deal_id] and target.items(2)[0]["title"] == "d"
    assert [r["price"] for r in target.item_rows(2, deal_id)] == [3.0]
    assert inv["id"] == target.items(31)[0]["id"]
    with pytest.raises(ValueError):
        target.items(1)
    with pytest.raises(ValueError):
        target.item_rows(1, 1)


# -- currencies and units ---------------------------------------------------------------------------

def test_currency_list_and_get(target, rest):
    reply = _ok(rest(target, "crm.currency.list"))
    codes = [c["CURRENCY"] for c in reply["result"]]
    assert {"UAH", "USD", "EUR", "RUB"} <= set(codes) and reply["total"] == 0
    base = [c for c in reply["result"] if c["BASE"] == "Y"]
    assert [c["CURRENCY"] for c in base] == [target.config.currency] and base[0]["AMOUNT"] == "1.0000"
    assert set(reply["result"][0]) == {"CURRENCY", "AMOUNT_CNT", "AMOUNT", "SORT", "BASE", "FULL_NAME", "LID",
                                       "FORMAT_STRING", "DEC_POINT", "THOUSANDS_SEP", "DECIMALS", "DATE_UPDATE"}
    desc = _ok(rest(target, "crm.currency.list", {"order": {"sort": "desc"}}))["result"]
    assert [int(c["SORT"]) for c in desc] == sorted((int(c["SORT"]) for c in desc), reverse=True)
    uah = _ok(rest(target, "crm.currency.get", {"id": "UAH"}))["result"]
    assert uah["CURRENCY"] == "UAH" and "FULL_NAME" in uah["LANG"]["en"]
    missing = rest(target, "crm.currency.get", {"id": "XYZ"})
    assert _error(missing) == "" and missing.json()["error_description"] == "Not found"


def test_currencies_are_configurable(make_portal, rest):
    portal = make_portal(currencies=["UAH", "EUR"], currency="UAH", enforce_rate=False)
    result = _ok(rest(portal, "crm.currency.list"))["result"]
    assert [(c["CURRENCY"], c["BASE"]) for c in result] == [("UAH", "Y"), ("EUR", "N")]
    assert float(result[1]["AMOUNT"]) > 1


def test_measure_lists(target, rest):
    legacy = _ok(rest(target, "crm.measure.list"))
    by_code = {m["CODE"]: m for m in legacy["result"]}
    assert by_code["796"]["SYMBOL_RUS"] == "шт" and by_code["796"]["IS_DEFAULT"] == "Y"
    assert by_code["166"]["SYMBOL_INTL"] == "kg" and legacy["total"] == len(legacy["result"])
    assert set(by_code["796"]) == {"ID", "CODE", "MEASURE_TITLE", "SYMBOL_RUS", "SYMBOL_INTL",
                                   "SYMBOL_LETTER_INTL", "IS_DEFAULT"}
    one = _ok(rest(target, "crm.measure.list", {"filter": {"CODE": 166}, "select": ["ID", "CODE"]}))["result"]
    assert one == [{"ID": by_code["166"]["ID"], "CODE": "166"}]
    modern = _ok(rest(target, "catalog.measure.list", {"select": ["id", "code", "symbolIntl"],
                                                       "filter": {"<=code": 200}, "order": {"code": "DESC"}}))
    assert modern["result"]["measures"] == [{"id": 4, "code": 166, "symbolIntl": "kg"},
                                            {"id": 3, "code": 163, "symbolIntl": "g"},
                                            {"id": 2, "code": 112, "symbolIntl": "l"},
                                            {"id": 1, "code": 6, "symbolIntl": "m"}]  # catalog-measure-list.md


# -- catalog products -------------------------------------------------------------------------------

def test_products_found_by_xml_id(target, rest):
    paper = target.add_product("Папір А4", 150.0, "00042")
    pen = target.add_product("Ручка", 12.5, "42", currency="USD")
    plain = target.add_product("Без коду", 1)

    def ids(flt):
        rows = _ok(rest(target, "crm.product.list", {"filter": flt, "select": ["ID", "XML_ID"]}))["result"]
        return [int(r["ID"]) for r in rows]

    assert ids({"@XML_ID": ["00042", "42", "missing"]}) == [paper, pen]
    assert ids({"XML_ID": ["00042"]}) == [paper] and ids({"=XML_ID": "42"}) == [pen]
    assert ids({"XML_ID": str(plain)}) == [plain]  # no external code: the id (catalog-product-list.md)
    got = _ok(rest(target, "crm.product.get", {"id": pen}))["result"]
    assert (got["NAME"], got["PRICE"], got["CURRENCY_ID"], got["XML_ID"]) == ("Ручка", "12.50", "USD", "42")
    assert _error(rest(target, "crm.product.get", {"id": 999999})) == ""
    assert [p["ID"] for p in target.products()][-3:] == [str(paper), str(pen), str(plain)]
    with pytest.raises(ValueError):
        target.add_product("bad currency", 1, currency="XYZ")


def test_configured_products_are_in_the_catalog(target, rest):
    rows = _ok(rest(target, "crm.product.list", {"select": ["ID", "NAME"]}))["result"]
    assert {"ID": "301", "NAME": "Router X100"} in rows
    assert target.add_product("next") == 302


def test_catalog_product_list(target, rest):
    paper = target.add_product("Папір А4", 150.0, "00042")
    cat = int(_ok(rest(target, "crm.product.get", {"id": paper}))["result"]["CATALOG_ID"])
    reply = _ok(rest(target, "catalog.product.list", {"select": ["id", "iblockId", "name", "xmlId"],
                                                      "filter": {"iblockId": cat, "xmlId": ["00042", "x"]}}))
    assert reply["result"]["products"] == [{"id": paper, "iblockId": cat, "name": "Папір А4", "xmlId": "00042"}]
    assert reply["total"] == 1
    errors = [
        ({"select": ["id"], "filter": {"iblockId": cat}}, "Required select fields: iblockId"),
        ({"select": ["id", "iblockId"], "filter": {"xmlId": "1"}}, "Required filter fields: iblockId"),
    ]
    for params, text in errors:
        bad = rest(target, "catalog.product.list", params)
        assert _error(bad) == "0" and bad.json()["error_description"] == text
    assert _error(rest(target, "catalog.product.list", {"select": ["id", "iblockId"],
                                                        "filter": {"iblockId": cat + 1}})) == "200040300000"


# -- companies and requisites -----------------------------------------------------------------------

def _company_with_requisite(portal, rest, title, fields, **stamp):
    company = portal.add_company({"TITLE": title, **stamp})
    rq = _ok(rest(portal, "crm.requisite.add", {"fields": {
        "ENTITY_TYPE_ID": 4, "ENTITY_ID": company, "PRESET_ID": 4, "NAME": title, **fields}}))["result"]
    return company, rq


def test_requisite_list_by_tax_ids(target, rest):
    presets = _ok(rest(target, "crm.requisite.preset.list"))["result"]
    assert {"ID": "4", "COUNTRY_ID": "14"}.items() <= next(p for p in presets if p["ID"] == "4").items()
    a, rq_a = _company_with_requisite(target, rest, "A", {"RQ_EDRPOU": "00032129", "RQ_INN": "000321290000"})
    b, rq_b = _company_with_requisite(target, rest, "B", {"RQ_EDRPOU": "32129"})
    contact = target.add_contact({"NAME": "C"})
    _ok(rest(target, "crm.requisite.add", {"fields": {"ENTITY_TYPE_ID": 3, "ENTITY_ID": contact, "PRESET_ID": 4,
                                                      "NAME": "C", "RQ_EDRPOU": "00032129"}}))

    def owners(flt):
        rows = _ok(rest(target, "crm.requisite.list", {"filter": flt,
                                                       "select": ["ID", "ENTITY_ID", "PRESET_ID"]}))["result"]
        return sorted(int(r["ENTITY_ID"]) for r in rows)

    assert owners({"=RQ_EDRPOU": "00032129", "=ENTITY_TYPE_ID": 4}) == [a]  # leading zeros matter
    assert owners({"@RQ_EDRPOU": ["00032129", "32129"], "ENTITY_TYPE_ID": "4"}) == sorted([a, b])
    assert owners({"=RQ_INN": "000321290000"}) == [a] and owners({"@RQ_INN": ["321290000"]}) == []
    assert owners({"=RQ_EDRPOU": "00032129"}) == sorted([a, contact])
    assert rq_a != rq_b


def test_company_list_by_title_and_stamp(target, rest):
    a = target.add_company({"TITLE": "ТОВ Альфа", "ORIGINATOR_ID": "b24relay:1c.main", "ORIGIN_ID": "0001"})
    b = target.add_company({"TITLE": "ТОВ Бета", "ORIGINATOR_ID": "b24relay:1c.main", "ORIGIN_ID": "0002"})
    target.add_company({"TITLE": "ТОВ Гамма", "ORIGINATOR_ID": "b24relay:1c.other", "ORIGIN_ID": "0001"})

    def ids(flt):
        rows = _ok(rest(target, "crm.company.list", {"filter": flt, "select": ["ID"]}))["result"]
        return sorted(int(r["ID"]) for r in rows)

    assert ids({"@TITLE": ["ТОВ Альфа", "ТОВ Бета", "nope"]}) == sorted([a, b])
    assert ids({"=ORIGINATOR_ID": "b24relay:1c.main", "@ORIGIN_ID": ["0001", "0002"]}) == sorted([a, b])
    assert ids({"=ORIGINATOR_ID": "b24relay:1c.main", "@ORIGIN_ID": ["1"]}) == []  # "0001" is a code


def test_control_api_seeds_products_and_shows_invoices(target, rest):
    made = requests.post(target.control_url + "products", json={"name": "Clip", "price": 2, "xml_id": "C-1"}, timeout=5)
    assert made.status_code == 200, made.text
    rows = _ok(rest(target, "crm.product.list", {"filter": {"=XML_ID": "C-1"}, "select": ["ID"]}))["result"]
    assert rows == [{"ID": str(made.json()["id"])}]
    _item(rest(target, "crm.item.add", {"entityTypeId": 31, "fields": {"xmlId": "seen"}}))
    shown = requests.get(target.control_url + "items/31", timeout=5).json()
    assert [i["xmlId"] for i in shown] == ["seen"]
