"""HTTP surface: URL scheme, encodings, unknown methods, the misc REST methods, control API."""

from __future__ import annotations

from urllib.parse import urlencode

import requests


def test_form_encoded_add_with_php_brackets(source):
    body = urlencode({"fields[TITLE]": "Form deal", "fields[CATEGORY_ID]": "1",
                      "fields[STAGE_ID]": "C1:EXECUTING", "fields[OPPORTUNITY]": "12.3"})
    reply = requests.post(source.webhook_url + "crm.deal.add", data=body, timeout=5,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 200
    deal = source.deal(reply.json()["result"])
    assert (deal["TITLE"], deal["STAGE_ID"], deal["OPPORTUNITY"]) == ("Form deal", "C1:EXECUTING", "12.30")


def test_method_with_and_without_json_suffix_and_case(source):
    for suffix in ("user.current", "user.current.json", "USER.Current.json"):
        reply = requests.post(source.webhook_url + suffix, timeout=5)
        assert reply.status_code == 200 and reply.json()["result"]["ID"] == "1", suffix


def test_unknown_method_is_404(source, rest):
    reply = rest(source, "crm.deal.teleport")
    assert reply.status_code == 404 and reply.json()["error"] == "ERROR_METHOD_NOT_FOUND"


def test_bad_json_and_bad_path(source):
    reply = requests.post(source.webhook_url + "user.current", data=b"{nope", timeout=5,
                          headers={"Content-Type": "application/json"})
    assert reply.status_code == 400 and reply.json()["error"] == "INVALID_REQUEST"
    assert requests.get(source.url + "/elsewhere", timeout=5).status_code == 404


def test_user_current_and_profile(target, rest):
    assert rest(target, "user.current").json()["result"]["NAME"] == "Admin"
    assert rest(target, "profile").json()["result"]["ID"] == "1"
    users = rest(target, "user.get", {"ID": 17}).json()["result"]
    assert [u["LAST_NAME"] for u in users] == ["Sidorova"]


def test_timeline_comment_needs_lower_case_fields(target, rest):
    deal_id = target.add_deal({"CATEGORY_ID": 3})
    ok = rest(target, "crm.timeline.comment.add",
              {"fields": {"ENTITY_ID": deal_id, "ENTITY_TYPE": "deal", "COMMENT": "Relayed from partner"}})
    assert ok.status_code == 200 and isinstance(ok.json()["result"], int)
    upper = rest(target, "crm.timeline.comment.add",
                 {"FIELDS": {"ENTITY_ID": deal_id, "ENTITY_TYPE": "deal", "COMMENT": "x"}})
    assert upper.status_code == 400 and "lower-case 'fields'" in upper.json()["error_description"]
    owner = rest(target, "crm.timeline.comment.add",
                 {"fields": {"ENTITY_ID": 999999, "ENTITY_TYPE": "deal", "COMMENT": "x"}})
    assert owner.status_code == 400 and owner.json()["error"] == "OWNER_NOT_FOUND"
    empty = rest(target, "crm.timeline.comment.add",
                 {"fields": {"ENTITY_ID": deal_id, "ENTITY_TYPE": "deal", "COMMENT": " "}})
    assert empty.status_code == 400 and empty.json()["error"] == "INVALID_ARG_VALUE"
    assert [c["COMMENT"] for c in target.comments(deal_id)] == ["Relayed from partner"]
    listed = rest(target, "crm.timeline.comment.list",
                  {"filter": {"ENTITY_ID": deal_id, "ENTITY_TYPE": "deal"}}).json()["result"]
    assert [c["COMMENT"] for c in listed] == ["Relayed from partner"]


def test_im_notify_system_add(target, rest):
    ok = rest(target, "im.notify.system.add", {"USER_ID": 17, "MESSAGE": "Deal failed to relay"})
    assert ok.status_code == 200 and isinstance(ok.json()["result"], int)
    assert rest(target, "im.notify.system.add", {"MESSAGE": "x"}).json()["error"] == "USER_ID_EMPTY"
    assert rest(target, "im.notify.system.add", {"USER_ID": 1}).json()["error"] == "MESSAGE_EMPTY"
    assert [(n["USER_ID"], n["MESSAGE"]) for n in target.notifications()] == [(17, "Deal failed to relay")]


def test_bizproc_event_send_needs_a_known_token(source, rest):
    denied = rest(source, "bizproc.event.send", {"EVENT_TOKEN": "forged"})
    assert denied.status_code == 403 and denied.json()["error"] == "ACCESS_DENIED"
    assert rest(source, "bizproc.event.send", {}).status_code == 403
    source.register_event_token("wf1|A1|sig")
    ok = rest(source, "bizproc.event.send", {"EVENT_TOKEN": "wf1|A1|sig",
                                             "RETURN_VALUES": {"target_deal": "501"}, "LOG_MESSAGE": "done"})
    assert ok.status_code == 200 and ok.json()["result"] is True
    assert source.event_sends()[0]["RETURN_VALUES"] == {"target_deal": "501"}


def test_categories_and_stages(target, rest):
    cats = rest(target, "crm.category.list", {"entityTypeId": 2}).json()["result"]["categories"]
    assert [(c["id"], c["name"]) for c in cats] == [(0, "General"), (3, "Partners")]
    stages = rest(target, "crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE_3"}}).json()["result"]
    assert [s["STATUS_ID"] for s in stages] == ["C3:NEW", "C3:PREPARATION", "C3:WON", "C3:LOSE"]


def test_request_log_records_methods_and_status(source, rest):
    rest(source, "crm.deal.get", {"id": 1})
    rest(source, "batch", {"cmd": {"a": "crm.deal.get?id=1", "b": "user.current"}})
    log = source.requests
    assert [(r.method, r.status) for r in log] == [("crm.deal.get", 400), ("batch", 200)]
    assert log[1].inner == ("crm.deal.get", "user.current")
    assert source.count_requests() == 2 and source.count_requests("crm.deal.get") == 2
    source.reset_log()
    assert source.count_requests() == 0


def test_control_api_seeds_inspects_and_faults(source):
    emu = source.url + "/_emu"
    created = requests.post(emu + "/deals", json={"fields": {"TITLE": "ctl", "CATEGORY_ID": 1},
                                                  "rows": [{"PRODUCT_ID": 16, "PRICE": 3}]}, timeout=5)
    deal_id = created.json()["id"]
    got = requests.get(f"{emu}/deals/{deal_id}", timeout=5).json()
    assert got["deal"]["TITLE"] == "ctl" and got["rows"][0]["PRODUCT_NAME"] == "Installation service"
    assert requests.patch(f"{emu}/deals/{deal_id}", json={"fields": {"TITLE": "edited"}}, timeout=5).ok
    assert [d["TITLE"] for d in requests.get(emu + "/deals", timeout=5).json()] == ["edited"]
    assert requests.get(f"{emu}/deals/424242", timeout=5).status_code == 404
    bad = requests.post(emu + "/deals", json={"fields": {"STAGE_ID": "NOPE"}}, timeout=5)
    assert bad.status_code == 400 and "NOPE" in bad.json()["error_description"]
    assert requests.post(emu + "/faults", json={"kind": "server_error", "method": "profile"}, timeout=5).ok
    assert requests.post(source.webhook_url + "profile", timeout=5).status_code == 500
    requests.post(emu + "/faults", json={"kind": "server_error"}, timeout=5)
    assert requests.delete(emu + "/faults", timeout=5).ok
    assert requests.post(source.webhook_url + "profile", timeout=5).status_code == 200
    log = requests.get(emu + "/requests", timeout=5).json()
    assert [r["method"] for r in log] == ["profile", "profile"]  # control calls are not logged
    assert requests.get(emu + "/info", timeout=5).json()["domain"] == "partner.bitrix24.test"


def test_reset_forgets_everything(source, rest):
    deal_id = source.add_deal({"TITLE": "x"})
    source.inject("server_error")
    source.register_event_token("tok")
    rest(source, "profile")
    assert requests.post(source.control_url + "reset", timeout=5).json() == {"ok": True}
    assert source.deals() == [] and source.faults() == [] and source.count_requests() == 0
    assert rest(source, "bizproc.event.send", {"EVENT_TOKEN": "tok"}).status_code == 403
    assert source.add_deal({}) == deal_id  # ids start over
