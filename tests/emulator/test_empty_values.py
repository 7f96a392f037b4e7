"""Empty values and the amount mode: how a portal stores, returns and clears them (issue 7, point 9).

Empty dates read back as ``""`` and empty multiple fields as ``[]``; every clearing form a client
can send (JSON ``null``/``""``/``[]``, form ``X=``, ``X[]=``, ``X[0]=``, also inside ``batch``) empties the
field.  A save or a ``productrows.set`` recomputes ``OPPORTUNITY`` from the rows unless
``IS_MANUAL_OPPORTUNITY`` is ``Y`` — see the docstrings of ``relay/emulator/deals.py``, ``uf.py``, ``rows.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from relay.phpquery import build_query

TAGS, DUE = "UF_CRM_TAGS", "UF_CRM_DUE"
ROWS = [{"PRODUCT_NAME": "Boiler", "PRICE": 1200, "QUANTITY": 1},
        {"PRODUCT_NAME": "Installation", "PRICE": 150, "QUANTITY": 2}]  # 1500
FILLED = {"CATEGORY_ID": 1, "CLOSEDATE": "2026-09-30", "BEGINDATE": "2026-09-01", DUE: "2026-09-15",
          TAGS: ["79", "80"]}


@pytest.fixture
def portal(make_portal: Any) -> Any:
    return make_portal(enforce_rate=False,
                       uf_fields={"UF_CRM_1700000000": "enumeration", TAGS: "enumeration", DUE: "date",
                                  "UF_CRM_NOTE": "string"},
                       enum_items={"UF_CRM_1700000000": {79: "Courier", 80: "Pickup"}, TAGS: {79: "A", 80: "B"}},
                       uf_multiple=[TAGS])


def get(rest: Any, portal: Any, deal_id: int) -> dict[str, Any]:
    return rest(portal, "crm.deal.get", {"id": deal_id}).json()["result"]


def form(portal: Any, method: str, body: str) -> requests.Response:
    return requests.post(portal.webhook_url + method, data=body, timeout=5,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})


def test_empty_values_as_crm_deal_get_returns_them(portal: Any, rest: Any) -> None:
    deal = get(rest, portal, portal.add_deal({"CATEGORY_ID": 1}))
    assert (deal[TAGS], deal[DUE], deal["UF_CRM_NOTE"]) == ([], "", None)
    assert deal["CLOSEDATE"] and deal["BEGINDATE"]  # crm.deal.add defaults: today + 7 days, today


@pytest.mark.parametrize(
    "value", [None, "", []], ids=["null", "empty string", "empty array"])
def test_json_update_clears_dates_and_multiple_fields(portal: Any, rest: Any, value: Any) -> None:
    deal_id = portal.add_deal(FILLED)
    fields = dict.fromkeys(("CLOSEDATE", "BEGINDATE", DUE, TAGS), value)
    assert rest(portal, "crm.deal.update", {"id": deal_id, "fields": fields}).json()["result"] is True
    deal = get(rest, portal, deal_id)
    assert [deal[k] for k in ("CLOSEDATE", "BEGINDATE", DUE, TAGS)] == ["", "", "", []]


@pytest.mark.parametrize(
    "clear_tags",
    ["fields[UF_CRM_TAGS]=", "fields[UF_CRM_TAGS][]=", "fields[UF_CRM_TAGS][0]="],
)
def test_form_update_clears_with_an_empty_string_or_an_array_of_one(portal: Any, clear_tags: str) -> None:
    deal_id = portal.add_deal(FILLED)
    body = f"id={deal_id}&{clear_tags}&fields[CLOSEDATE]=&fields[UF_CRM_DUE]="
    assert form(portal, "crm.deal.update", body).json()["result"] is True
    deal = portal.deal(deal_id)
    assert (deal[TAGS], deal["CLOSEDATE"], deal[DUE]) == ([], "", "")
    assert deal["BEGINDATE"].startswith("2026-09-01")  # not sent: unchanged


def test_batch_update_built_like_http_build_query_clears(portal: Any, rest: Any) -> None:
    deal_id = portal.add_deal(FILLED)
    # what the relay sends: fields[X]= for a single field, fields[X][0]= for a multiple one;
    # a null or an empty array would vanish from the command
    query = build_query({"id": deal_id, "fields": {"CLOSEDATE": "", DUE: "", TAGS: [""], "TITLE": None}})
    assert "TITLE" not in query
    reply = rest(portal, "batch", {"cmd": {"u": f"crm.deal.update?{query}",
                                           "g": f"crm.deal.get?id={deal_id}"}}).json()["result"]
    assert reply["result_error"] == []
    deal = reply["result"]["g"]
    assert (deal[TAGS], deal["CLOSEDATE"], deal[DUE]) == ([], "", "")


def test_cleared_date_sorts_first_and_is_outside_date_filters(portal: Any, rest: Any) -> None:
    dated = portal.add_deal(FILLED)
    empty = portal.add_deal({**FILLED, "CLOSEDATE": ""})
    listed = rest(portal, "crm.deal.list", {"order": {"CLOSEDATE": "ASC"}, "select": ["ID"]}).json()["result"]
    assert [int(d["ID"]) for d in listed] == [empty, dated]
    for op in ("<", ">"):
        found = rest(portal, "crm.deal.list", {"filter": {f"{op}CLOSEDATE": "2026-09-30"}}).json()["result"]
        assert found == []
    found = rest(portal, "crm.deal.list", {"filter": {"CLOSEDATE": ""}, "select": ["ID"]}).json()["result"]
    assert [int(d["ID"]) for d in found] == [empty]


# --- the amount: automatic unless IS_MANUAL_OPPORTUNITY is Y ------------------------------------


def test_rows_set_the_amount_unless_it_is_manual(portal: Any, rest: Any) -> None:
    auto = portal.add_deal({"OPPORTUNITY": 999}, rows=ROWS)
    manual = portal.add_deal({"OPPORTUNITY": 999, "IS_MANUAL_OPPORTUNITY": "Y"}, rows=ROWS)
    assert get(rest, portal, auto)["OPPORTUNITY"] == "1500.00"
    assert get(rest, portal, manual)["OPPORTUNITY"] == "999.00"
    rest(portal, "crm.deal.productrows.set", {"id": manual, "rows": ROWS[:1]})
    assert get(rest, portal, manual)["OPPORTUNITY"] == "999.00"


def test_a_save_recomputes_an_automatic_amount_from_the_rows(portal: Any, rest: Any) -> None:
    deal_id = portal.add_deal({}, rows=ROWS)
    rest(portal, "crm.deal.update", {"id": deal_id, "fields": {"OPPORTUNITY": 999}})
    assert get(rest, portal, deal_id)["OPPORTUNITY"] == "1500.00"  # replaced by the rows' sum
    rest(portal, "crm.deal.update", {"id": deal_id, "fields": {"OPPORTUNITY": 999, "IS_MANUAL_OPPORTUNITY": "Y"}})
    deal = get(rest, portal, deal_id)
    assert (deal["OPPORTUNITY"], deal["IS_MANUAL_OPPORTUNITY"]) == ("999.00", "Y")
    rest(portal, "crm.deal.update", {"id": deal_id, "fields": {"IS_MANUAL_OPPORTUNITY": "N"}})
    assert get(rest, portal, deal_id)["OPPORTUNITY"] == "1500.00"  # back to automatic


def test_without_rows_the_amount_is_kept(portal: Any, rest: Any) -> None:
    deal_id = portal.add_deal({"OPPORTUNITY": 999})
    rest(portal, "crm.deal.update", {"id": deal_id, "fields": {"TITLE": "x"}})
    assert get(rest, portal, deal_id)["OPPORTUNITY"] == "999.00"


def test_relay_order_manual_update_then_rows_keeps_the_amount(portal: Any, rest: Any) -> None:
    """crm.deal.update (amount + mode) then productrows.set, in one batch, as the relay writes."""
    deal_id = portal.add_deal({}, rows=ROWS)
    update = build_query({"id": deal_id, "fields": {"OPPORTUNITY": "999.00", "IS_MANUAL_OPPORTUNITY": "Y"}})
    rows = build_query({"id": deal_id, "rows": [dict(r, QUANTITY=3) for r in ROWS]})
    reply = rest(portal, "batch", {"cmd": {"u": f"crm.deal.update?{update}",
                                           "p": f"crm.deal.productrows.set?{rows}"}})
    assert reply.json()["result"]["result_error"] == []
    assert get(rest, portal, deal_id)["OPPORTUNITY"] == "999.00"
