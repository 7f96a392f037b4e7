"""What a mapping check/init reads from a portal: users, labels, required fields, stage names,
custom deal fields created over REST, products, presets, funnels — over real HTTP."""

from __future__ import annotations

import pytest

from relay.emulator import PortalConfig, default_source_config, default_target_config


def _ok(reply):
    assert reply.status_code == 200, reply.text
    return reply.json()


def _error(reply):
    """``(HTTP status, error, error_description)`` of an error answer."""
    body = reply.json()
    return reply.status_code, body["error"], body["error_description"]


# -- user.get ----------------------------------------------------------------------------------------


def test_default_pair_users_carry_their_emails(source, target, rest):
    src = _ok(rest(source, "user.get", {}))
    assert [(u["ID"], u["NAME"], u["LAST_NAME"], u["EMAIL"], u["ACTIVE"]) for u in src["result"]] == [
        ("1", "Admin", "", "admin@partner.example", True),
        ("5", "Ivan", "Petrov", "ivan.petrov@partner.example", True)]
    assert src["total"] == 2
    dst = _ok(rest(target, "user.get", {"filter": {"EMAIL": "ivan.petrov@partner.example"}}))["result"]
    assert [(u["ID"], u["NAME"], u["LAST_NAME"]) for u in dst] == [("18", "Ivan", "Petrov")]
    me = _ok(rest(target, "user.current"))["result"]
    assert (me["ID"], me["EMAIL"], me["ACTIVE"]) == ("1", "admin@esb.example", True)


def test_user_get_lists_dismissed_users_unless_active_is_asked(make_portal, rest):
    portal = make_portal(enforce_rate=False, users={1: "Admin", 5: "Ivan Petrov", 7: "Old Timer"},
                         inactive_users=[7], user_emails={5: "ivan@partner.example"})
    every = _ok(rest(portal, "user.get", {}))["result"]
    assert [(u["ID"], u["ACTIVE"]) for u in every] == [("1", True), ("5", True), ("7", False)]
    assert every[2]["EMAIL"] == f"user7@{portal.config.domain}"  # not listed: the default address
    active = _ok(rest(portal, "user.get", {"filter": {"ACTIVE": True}}))
    assert [u["ID"] for u in active["result"]] == ["1", "5"] and active["total"] == 2
    assert [u["ID"] for u in _ok(rest(portal, "user.get", {"FILTER": {"ACTIVE": "Y"}}))["result"]] == ["1", "5"]
    assert [u["ID"] for u in _ok(rest(portal, "user.get", {"filter": {"ACTIVE": "N"}}))["result"]] == ["7"]


def test_user_get_filters_by_id_email_and_prefixes(make_portal, rest):
    portal = make_portal(enforce_rate=False, users={1: "Admin", 5: "Ivan Petrov", 7: "Anna Ivanova"},
                         user_emails={5: "Ivan.Petrov@partner.example", 7: "anna@partner.example"})

    def ids(params):
        return [u["ID"] for u in _ok(rest(portal, "user.get", params))["result"]]

    assert ids({"ID": 5}) == ["5"]  # top-level filter keys, as the doc's examples pass them
    assert ids({"filter": {"ID": "7"}}) == ["7"]
    assert ids({"filter": {"@ID": [1, 7, 99]}}) == ["1", "7"]
    assert ids({"filter": {"EMAIL": "ivan.petrov@partner.example"}}) == ["5"]
    assert ids({"filter": {"EMAIL": "nobody@partner.example"}}) == []
    assert ids({"filter": {"%EMAIL": "@partner.example"}}) == ["5", "7"]
    assert ids({"filter": {"NAME": "Iv%"}}) == ["5"]  # the doc's "name starting with" example
    assert ids({"filter": {"NAME": "Iv"}}) == []
    assert ids({"filter": {"%LAST_NAME": "ov"}}) == ["5", "7"]
    assert ids({"filter": {"!%LAST_NAME": "an"}}) == ["1", "5"]
    assert ids({"filter": {"!ID": 1}}) == ["5", "7"]
    assert ids({"sort": "LAST_NAME", "order": "DESC"}) == ["5", "7", "1"]
    rows = _ok(rest(portal, "user.get", {"ID": 7, "select": ["ID", "EMAIL"]}))["result"]
    assert rows == [{"ID": "7", "EMAIL": "anna@partner.example"}]


def test_user_get_pages_by_fifty(make_portal, rest):
    portal = make_portal(enforce_rate=False, users={i: f"User {i}" for i in range(1, 121)})
    first = _ok(rest(portal, "user.get", {"start": 0}))
    assert len(first["result"]) == 50 and first["total"] == 120 and first["next"] == 50
    assert first["result"][0]["ID"] == "1" and first["result"][-1]["ID"] == "50"
    last = _ok(rest(portal, "user.get", {"start": 100}))
    assert [u["ID"] for u in last["result"]] == [str(i) for i in range(101, 121)]
    assert last["total"] == 120 and "next" not in last
    fast = _ok(rest(portal, "user.get", {"start": -1}))
    assert len(fast["result"]) == 50 and "total" not in fast
    batch = _ok(rest(portal, "batch", {"cmd": {"u": "user.get?start=50"}}))["result"]
    assert batch["result_total"]["u"] == 120 and batch["result_next"]["u"] == 100


# -- crm.deal.fields: labels and isRequired; crm.deal.add refusals -----------------------------------


def test_deal_fields_show_labels_of_custom_fields(source, target, rest):
    fields = _ok(rest(target, "crm.deal.fields"))["result"]
    for name, text in [("UF_CRM_DELIVERY", "Delivery"), ("UF_CRM_SOURCE_DEAL", "Source deal"),
                       ("UF_CRM_PARTNER_COMPANY", "Partner company")]:
        desc = fields[name]
        assert desc["title"] == name and desc["upperName"] == name and desc["isDynamic"] is True
        assert (desc["listLabel"], desc["formLabel"], desc["filterLabel"]) == (text, text, text)
    assert fields["UF_CRM_DELIVERY"]["items"] == [{"ID": "112", "VALUE": "Courier"}, {"ID": "113", "VALUE": "Pickup"}]
    assert fields["TITLE"]["title"] == "Name" and "listLabel" not in fields["TITLE"]
    assert _ok(rest(source, "crm.deal.fields"))["result"]["UF_CRM_1700000000"]["listLabel"] == "Delivery"


def test_unlabelled_custom_field_shows_its_code(make_portal, rest):
    portal = make_portal(enforce_rate=False, uf_fields={"UF_CRM_NOTE": "string"}, enum_items={})
    desc = _ok(rest(portal, "crm.deal.fields"))["result"]["UF_CRM_NOTE"]
    assert (desc["title"], desc["listLabel"], desc["formLabel"]) == ("UF_CRM_NOTE", "UF_CRM_NOTE", "UF_CRM_NOTE")


def test_required_fields_are_described_and_enforced(make_portal, rest):
    portal = make_portal(enforce_rate=False, required_fields=["COMMENTS", "UF_CRM_1700000000"])
    fields = _ok(rest(portal, "crm.deal.fields"))["result"]
    assert fields["COMMENTS"]["isRequired"] is True and fields["UF_CRM_1700000000"]["isRequired"] is True
    assert fields["TITLE"]["isRequired"] is False
    before = len(portal.deals())
    refused = rest(portal, "crm.deal.add", {"fields": {"TITLE": "t", "COMMENTS": " ", "UF_CRM_1700000000": ""}})
    assert refused.status_code == 400 and refused.json()["error"] == ""
    text = refused.json()["error_description"]
    assert '"Comment" field (COMMENTS) is required' in text and '"Delivery" field (UF_CRM_1700000000)' in text
    half = rest(portal, "crm.deal.add", {"fields": {"COMMENTS": "c"}})
    assert half.status_code == 400 and "UF_CRM_1700000000" in half.json()["error_description"]
    assert "COMMENTS" not in half.json()["error_description"]
    assert len(portal.deals()) == before
    deal_id = _ok(rest(portal, "crm.deal.add", {"fields": {"COMMENTS": "c", "UF_CRM_1700000000": 79}}))["result"]
    assert portal.deal(deal_id)["UF_CRM_1700000000"] == "79"
    blank = rest(portal, "crm.deal.update", {"id": deal_id, "fields": {"COMMENTS": ""}})
    assert blank.status_code == 400 and "COMMENTS" in blank.json()["error_description"]
    assert _ok(rest(portal, "crm.deal.update", {"id": deal_id, "fields": {"TITLE": "other"}}))["result"] is True
    assert portal.deal(deal_id)["COMMENTS"] == "c"
    item = rest(portal, "crm.item.add", {"entityTypeId": 2, "fields": {"title": "x"}})
    assert item.status_code == 400 and item.json()["error"] == "CRM_FIELD_ERROR_REQUIRED"
    seeded = portal.add_deal({"TITLE": "seeded before the rule"})  # a test's seeding is not refused
    assert portal.deal(seeded)["TITLE"] == "seeded before the rule"


# -- crm.status.list, crm.category.list ---------------------------------------------------------------


def test_stage_names_come_from_the_config(make_portal, source, rest):
    portal = make_portal(enforce_rate=False, stage_names={"C1:NEW": "Inbox", "C1:WON": "Delivered"})
    rows = _ok(rest(portal, "crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE_1"},
                                                "order": {"SORT": "ASC"}}))["result"]
    assert [(r["STATUS_ID"], r["NAME"]) for r in rows] == [
        ("C1:NEW", "Inbox"), ("C1:PREPARATION", "Preparation"), ("C1:EXECUTING", "Executing"),
        ("C1:WON", "Delivered"), ("C1:LOSE", "Lose")]
    default = _ok(rest(source, "crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE_1"}}))["result"]
    assert default[0]["NAME"] == "New"


def test_default_pair_funnels_share_a_name(source, target, rest):
    src = _ok(rest(source, "crm.category.list", {"entityTypeId": 2}))["result"]["categories"]
    dst = _ok(rest(target, "crm.category.list", {"entityTypeId": 2}))["result"]["categories"]
    assert [(c["id"], c["name"]) for c in src] == [(0, "General"), (1, "Partners")]
    assert [(c["id"], c["name"]) for c in dst] == [(0, "General"), (3, "Partners")]


# -- crm.deal.userfield.* -----------------------------------------------------------------------------


def test_userfield_add_makes_a_deal_field(target, rest):
    old_deal = target.add_deal({"TITLE": "before", "CATEGORY_ID": 3})
    added = _ok(rest(target, "crm.deal.userfield.add", {"fields": {
        "FIELD_NAME": "region", "USER_TYPE_ID": "enumeration", "LABEL": "Region", "MULTIPLE": "Y",
        "EDIT_FORM_LABEL": {"en": "Sales region", "de": "Region"},
        "LIST": [{"VALUE": "North", "XML_ID": "N"}, {"VALUE": "South", "XML_ID": "S"}, {"VALUE": ""}]}}))
    field_id = added["result"]
    assert isinstance(field_id, int)
    got = _ok(rest(target, "crm.deal.userfield.get", {"id": field_id}))["result"]
    assert (got["ID"], got["ENTITY_ID"], got["FIELD_NAME"], got["USER_TYPE_ID"], got["MULTIPLE"]) == (
        str(field_id), "CRM_DEAL", "UF_CRM_REGION", "enumeration", "Y")
    assert got["EDIT_FORM_LABEL"]["en"] == "Sales region" and got["EDIT_FORM_LABEL"]["fr"] == "Region"
    assert got["LIST_COLUMN_LABEL"]["en"] == "Region"
    items = {i["XML_ID"]: i["ID"] for i in got["LIST"]}
    assert sorted(items) == ["N", "S"]

    desc = _ok(rest(target, "crm.deal.fields"))["result"]["UF_CRM_REGION"]
    assert (desc["type"], desc["isMultiple"], desc["title"], desc["listLabel"]) == (
        "enumeration", True, "UF_CRM_REGION", "Sales region")
    assert [i["VALUE"] for i in desc["items"]] == ["North", "South"]

    deal_id = _ok(rest(target, "crm.deal.add", {"fields": {"TITLE": "with region", "CATEGORY_ID": 3,
                                                           "UF_CRM_REGION": [items["S"]]}}))["result"]
    assert _ok(rest(target, "crm.deal.get", {"id": deal_id}))["result"]["UF_CRM_REGION"] == [items["S"]]
    assert _ok(rest(target, "crm.deal.get", {"id": old_deal}))["result"]["UF_CRM_REGION"] == []
    listed = _ok(rest(target, "crm.deal.list", {"filter": {"ID": deal_id}, "select": ["ID", "UF_CRM_REGION"]}))
    assert listed["result"] == [{"ID": str(deal_id), "UF_CRM_REGION": [items["S"]]}]
    bad = rest(target, "crm.deal.add", {"fields": {"CATEGORY_ID": 3, "UF_CRM_REGION": ["999999"]}})
    assert bad.status_code == 400 and "UF_CRM_REGION" in bad.json()["error_description"]

    again = rest(target, "crm.deal.userfield.add", {"fields": {"FIELD_NAME": "UF_REGION", "USER_TYPE_ID": "string"}})
    assert _error(again) == (400, "ERROR_CORE", "The field UF_CRM_REGION for the CRM_DEAL object already exists.")
    configured = rest(target, "crm.deal.userfield.add", {"fields": {"FIELD_NAME": "UF_CRM_DELIVERY",
                                                                    "USER_TYPE_ID": "string"}})
    assert configured.status_code == 400 and configured.json()["error"] == "ERROR_CORE"


def test_userfield_list_filters_orders_and_labels_by_lang(target, rest):
    _ok(rest(target, "crm.deal.userfield.add", {"fields": {
        "FIELD_NAME": "NOTE", "USER_TYPE_ID": "string", "LABEL": "Note", "MANDATORY": "Y", "SORT": 50}}))
    every = _ok(rest(target, "crm.deal.userfield.list", {}))
    names = [f["FIELD_NAME"] for f in every["result"]]
    assert names[0] == "UF_CRM_NOTE" and every["total"] == 4  # SORT 50 before the three with 100
    assert set(names[1:]) == {"UF_CRM_SOURCE_DEAL", "UF_CRM_PARTNER_COMPANY", "UF_CRM_DELIVERY"}
    assert all("EDIT_FORM_LABEL" not in f for f in every["result"])  # no LANG: no labels
    required = _ok(rest(target, "crm.deal.userfield.list", {"filter": {"MANDATORY": "Y", "LANG": "en"}}))["result"]
    assert [(f["FIELD_NAME"], f["EDIT_FORM_LABEL"]) for f in required] == [("UF_CRM_NOTE", "Note")]
    delivery = _ok(rest(target, "crm.deal.userfield.list", {"filter": {"USER_TYPE_ID": "enumeration",
                                                                       "LANG": "en"}}))["result"]
    assert [(f["FIELD_NAME"], f["LIST_COLUMN_LABEL"]) for f in delivery] == [("UF_CRM_DELIVERY", "Delivery")]
    assert [i["VALUE"] for i in delivery[0]["LIST"]] == ["Courier", "Pickup"]
    by_name = _ok(rest(target, "crm.deal.userfield.list", {"order": {"FIELD_NAME": "DESC"}}))["result"]
    assert [f["FIELD_NAME"] for f in by_name] == sorted(names, reverse=True)
    assert _ok(rest(target, "crm.deal.fields"))["result"]["UF_CRM_NOTE"]["isRequired"] is True
    refused = rest(target, "crm.deal.add", {"fields": {"TITLE": "no note"}})
    assert refused.status_code == 400 and '"Note" field (UF_CRM_NOTE)' in refused.json()["error_description"]
    bad = rest(target, "crm.deal.userfield.list", {"filter": "x"})
    assert bad.status_code == 400 and bad.json()["error_description"] == "Parameter 'filter' must be array."


@pytest.mark.parametrize(("fields", "code", "text"), [
    ({"USER_TYPE_ID": "string"}, "", "The 'FIELD_NAME' field is not found."),
    ({"FIELD_NAME": "X"}, "", "The 'USER_TYPE_ID' field is not found."),
    ({"FIELD_NAME": "BAD-NAME", "USER_TYPE_ID": "string"}, "ERROR_CORE",
     "Field name contains invalid characters. Allowed characters are: A-Z, 0-9 and _."),
    ({"FIELD_NAME": "X" * 44, "USER_TYPE_ID": "string"}, "ERROR_CORE",
     "Field name is too long (more than 50 characters)."),
    ({"FIELD_NAME": "X", "USER_TYPE_ID": "rocket"}, "ERROR_CORE", "Incorrect custom type specified."),
    ({"FIELD_NAME": "X", "USER_TYPE_ID": "enumeration", "LIST": [{"VALUE": "a", "XML_ID": "k"},
                                                                 {"VALUE": "b", "XML_ID": "k"}]},
     "ERROR_CORE", "List item with value XML_ID=k already exists."),
])
def test_userfield_add_errors(source, rest, fields, code, text):
    reply = rest(source, "crm.deal.userfield.add", {"fields": fields})
    assert _error(reply) == (400, code, text)
    assert "UF_CRM_X" not in _ok(rest(source, "crm.deal.fields"))["result"]


def test_userfield_get_errors(source, rest):
    assert _error(rest(source, "crm.deal.userfield.get", {"id": 0})) == (400, "", "ID is not defined or invalid.")
    missing = rest(source, "crm.deal.userfield.get", {"id": 999999})
    assert missing.status_code == 404 and missing.json()["error"] == "ERROR_NOT_FOUND"
    listed = _ok(rest(source, "crm.deal.userfield.list", {"filter": {"FIELD_NAME": "UF_CRM_1700000000"}}))["result"]
    got = _ok(rest(source, "crm.deal.userfield.get", {"id": listed[0]["ID"]}))["result"]
    assert got["EDIT_FORM_LABEL"]["en"] == "Delivery" and [i["ID"] for i in got["LIST"]] == ["79", "80"]


# -- the other reads of a mapping check ---------------------------------------------------------------


def test_company_contact_fields_presets_products(make_portal, target, rest):
    company = _ok(rest(target, "crm.company.fields"))["result"]
    contact = _ok(rest(target, "crm.contact.fields"))["result"]
    assert company["TITLE"]["type"] == "string" and company["ID"]["isReadOnly"] is True
    assert "NAME" in contact and "LAST_NAME" in contact
    presets = _ok(rest(target, "crm.requisite.preset.list", {"select": ["ID", "NAME"]}))["result"]
    assert {"ID": "1", "NAME": "Organization"} in presets
    assert all(set(p) == {"ID", "NAME"} for p in presets)
    products = _ok(rest(target, "crm.product.list", {"select": ["ID", "NAME", "XML_ID"], "filter": {"@ID": [301]}}))
    assert products["result"] == [{"ID": "301", "NAME": "Router X100", "XML_ID": "301"}]
    portal = make_portal(enforce_rate=False, product_xml_ids={15: "RX-100"})
    rows = _ok(rest(portal, "crm.product.list", {"select": ["ID", "NAME", "XML_ID"], "order": {"ID": "ASC"}}))
    assert rows["result"] == [{"ID": "15", "NAME": "Router X100", "XML_ID": "RX-100"},
                              {"ID": "16", "NAME": "Installation service", "XML_ID": "16"}]
    by_code = _ok(rest(portal, "crm.product.list", {"filter": {"XML_ID": "RX-100"}, "select": ["ID"]}))["result"]
    assert by_code == [{"ID": "15"}]


# -- PortalConfig -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "text"), [
    ({"user_emails": {9: "x@y.example"}}, "user 9"),
    ({"user_emails": {5: "not an address"}}, "not an address"),
    ({"inactive_users": [9]}, "user 9"),
    ({"inactive_users": [1]}, "webhook user 1"),
    ({"field_labels": {"TITLE": "Name"}}, "'TITLE'"),
    ({"field_labels": {"UF_CRM_NOWHERE": "x"}}, "'UF_CRM_NOWHERE'"),
    ({"required_fields": ["NO_SUCH_FIELD"]}, "'NO_SUCH_FIELD'"),
    ({"required_fields": ["DATE_CREATE"]}, "'DATE_CREATE'"),
    ({"stage_names": {"C7:NEW": "x"}}, "'C7:NEW'"),
    ({"product_xml_ids": {99: "x"}}, "product 99"),
    ({"product_xml_ids": {15: " "}}, "product 15"),
])
def test_invalid_fact_keys_are_refused(bad, text):
    with pytest.raises(ValueError) as caught:
        PortalConfig.from_dict(bad, default_source_config())
    assert text in str(caught.value)


def test_overrides_drop_facts_about_what_they_remove():
    cfg = default_target_config(users={1: "Root"}, uf_fields={"UF_CRM_OTHER": "string"}, enum_items={},
                                categories={0: ["NEW", "WON"]}, products={})
    assert cfg.user_emails == {1: "admin@esb.example"} and cfg.field_labels == {}
    cfg = PortalConfig.from_dict({"user_emails": {"1": "root@esb.example"}, "inactive_users": ["17"]},
                                 default_target_config())
    assert cfg.user_emails == {1: "root@esb.example"} and cfg.inactive_users == [17]
    assert default_source_config().field_labels == {"UF_CRM_1700000000": "Delivery"}
