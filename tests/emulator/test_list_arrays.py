"""crm.deal.list: id arrays in ``@ID``/``ID``/``=ID`` filters and explicit multiple UF fields in select."""

from __future__ import annotations

from relay.phpquery import build_query


def _ids(reply):
    return [int(d["ID"]) for d in reply.json()["result"]]


def _portal(make_portal):
    return make_portal(enforce_rate=False,
                       uf_fields={"UF_CRM_1700000000": "enumeration", "UF_CRM_TAGS": "string"},
                       uf_multiple=["UF_CRM_TAGS"])


def test_id_arrays_in_all_documented_forms(make_portal, rest):
    portal = _portal(make_portal)
    a, b, c = (portal.add_deal({"TITLE": t}) for t in ("a", "b", "c"))
    for key in ("@ID", "ID", "=ID"):
        reply = rest(portal, "crm.deal.list", {"filter": {key: [a, str(c)]}, "select": ["ID"]})
        assert reply.status_code == 200 and _ids(reply) == [a, c], key
    assert _ids(rest(portal, "crm.deal.list", {"filter": {"!@ID": [a, c]}, "select": ["ID"]})) == [b]


def test_select_uf_mask_leaves_out_multiple_fields_unless_named(make_portal, rest):
    portal = _portal(make_portal)
    portal.add_deal({"UF_CRM_TAGS": ["x", "y"], "UF_CRM_1700000000": 79})
    masked = rest(portal, "crm.deal.list", {"select": ["UF_*"]}).json()["result"][0]
    assert set(masked) == {"ID", "UF_CRM_1700000000"}
    named = rest(portal, "crm.deal.list", {"select": ["UF_*", "UF_CRM_TAGS", "TITLE"]}).json()["result"][0]
    assert named["UF_CRM_TAGS"] == ["x", "y"] and "TITLE" in named
    default = rest(portal, "crm.deal.list").json()["result"][0]
    assert "UF_CRM_TAGS" not in default and "UF_CRM_1700000000" in default


def test_id_array_filter_inside_batch(make_portal, rest):
    portal = _portal(make_portal)
    a, _, c = (portal.add_deal({"TITLE": t}) for t in ("a", "b", "c"))
    query = build_query({"filter": {"@ID": [a, c]}, "select": ["ID", "UF_CRM_TAGS"]})
    reply = rest(portal, "batch", {"cmd": {"find": "crm.deal.list?" + query,
                                           "bad": "crm.deal.list?filter=oops"}})
    body = reply.json()["result"]
    assert [int(d["ID"]) for d in body["result"]["find"]] == [a, c]
    assert body["result"]["find"][0]["UF_CRM_TAGS"] == []
    assert body["result_total"]["find"] == 2
    assert body["result_error"]["bad"]["error_description"] == "Parameter 'filter' must be array."
