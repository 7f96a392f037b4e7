"""crm.deal.list: filter operators, silently ignored unknown fields, select, order, paging."""

from __future__ import annotations


def _ids(reply):
    return [int(d["ID"]) for d in reply.json()["result"]]


def _seed(portal):
    a = portal.add_deal({"TITLE": "Alpha router", "CATEGORY_ID": 1, "OPPORTUNITY": 100,
                         "UF_CRM_1700000000": 79, "DATE_MODIFY": "2024-01-10T10:00:00+03:00"})
    b = portal.add_deal({"TITLE": "Beta switch", "CATEGORY_ID": 1, "OPPORTUNITY": 900,
                         "STAGE_ID": "C1:WON", "DATE_MODIFY": "2024-03-01T10:00:00+03:00"})
    c = portal.add_deal({"TITLE": "Gamma router", "OPPORTUNITY": 20,
                         "DATE_MODIFY": "2024-02-01T10:00:00+03:00"})
    return a, b, c


def test_filter_operators(source, rest):
    a, b, c = _seed(source)

    def find(flt):
        return _ids(rest(source, "crm.deal.list", {"filter": flt, "select": ["ID"]}))

    assert find({"CATEGORY_ID": 1}) == [a, b]
    assert find({"=CATEGORY_ID": "1"}) == [a, b]
    assert find({"!CATEGORY_ID": 1}) == [c]
    assert find({"!=STAGE_ID": "C1:WON", "CATEGORY_ID": 1}) == [a]
    assert find({">OPPORTUNITY": 100}) == [b]          # numeric, not "900" < "100" text order
    assert find({">=OPPORTUNITY": "100"}) == [a, b]
    assert find({"<OPPORTUNITY": 100}) == [c]
    assert find({"<=OPPORTUNITY": 100.0}) == [a, c]
    assert find({"@ID": [a, c]}) == [a, c]
    assert find({"!@ID": [a, c]}) == [b]
    assert find({"%TITLE": "router"}) == [a, c]
    assert find({"=%TITLE": "Beta%"}) == [b]
    assert find({">DATE_MODIFY": "2024-01-31T23:00:00+03:00"}) == [b, c]
    assert find({">ID": a}) == [b, c]
    assert find({"UF_CRM_1700000000": "79"}) == [a]


def test_unknown_filter_fields_are_silently_ignored(source, rest):
    a, b, c = _seed(source)
    reply = rest(source, "crm.deal.list", {"filter": {"=UF_CRM_TYPO": "7405", "NOPE": 1}})
    assert reply.status_code == 200
    assert _ids(reply) == [a, b, c]


def test_select_masks_and_default(source, rest):
    _seed(source)
    default = rest(source, "crm.deal.list").json()["result"][0]
    assert "TITLE" in default and "UF_CRM_1700000000" in default
    star = rest(source, "crm.deal.list", {"select": ["*"]}).json()["result"][0]
    assert "TITLE" in star and "UF_CRM_1700000000" not in star
    uf = rest(source, "crm.deal.list", {"select": ["UF_*"]}).json()["result"][0]
    assert set(uf) == {"ID", "UF_CRM_1700000000"}
    named = rest(source, "crm.deal.list", {"select": ["TITLE", "BOGUS"]}).json()["result"][0]
    assert set(named) == {"ID", "TITLE"}


def test_order_by_any_field(source, rest):
    a, b, c = _seed(source)
    by_sum = rest(source, "crm.deal.list", {"order": {"OPPORTUNITY": "DESC"}, "select": ["ID"]})
    assert _ids(by_sum) == [b, a, c]
    by_date = rest(source, "crm.deal.list", {"order": {"DATE_MODIFY": "ASC"}, "select": ["ID"]})
    assert _ids(by_date) == [a, c, b]


def test_pages_of_fifty_with_total_and_next(source, rest):
    ids = [source.add_deal({"TITLE": f"d{i}"}) for i in range(120)]
    first = rest(source, "crm.deal.list", {"select": ["ID"]}).json()
    assert len(first["result"]) == 50 and first["total"] == 120 and first["next"] == 50
    last = rest(source, "crm.deal.list", {"select": ["ID"], "start": 100}).json()
    assert [int(d["ID"]) for d in last["result"]] == ids[100:]
    assert last["total"] == 120 and "next" not in last
    fast = rest(source, "crm.deal.list", {"select": ["ID"], "start": -1,
                                          "order": {"ID": "ASC"}, "filter": {">ID": ids[59]}}).json()
    assert [int(d["ID"]) for d in fast["result"]] == ids[60:110]
    assert "total" not in fast and "next" not in fast


def test_list_via_get_query_string(source):
    import requests

    a, b, _ = _seed(source)
    url = source.webhook_url + "crm.deal.list?filter[CATEGORY_ID]=1&select[]=ID&order[ID]=DESC"
    reply = requests.get(url, timeout=5)
    assert reply.status_code == 200
    assert [int(d["ID"]) for d in reply.json()["result"]] == [b, a]
