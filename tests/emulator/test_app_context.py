"""Issue 10: the emulated portal hosts a local server-side application — install, OAuth server, REST with
``auth=``, app-only methods, robots, online/offline event bindings, uninstall."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests

from relay.emulator import EmulatedPortal
from relay.phpquery import build_query, parse_query

CONNECTOR = "b24relay"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def app_call(portal: EmulatedPortal, method: str, params: dict[str, Any] | None = None,
             token: str | None = None, *, connector: str | None = None, how: str = "json") -> requests.Response:
    """Call ``<portal>/rest/<method>`` as the installed application (``auth`` in a JSON body, form or query)."""
    body = dict(params or {})
    body["auth"] = token if token is not None else portal.app_tokens()["access_token"]
    if connector is not None:
        body["auth_connector"] = connector
    url = portal.app_rest_url + method
    if how == "form":
        return requests.post(url, data=build_query(body), headers=FORM, timeout=5)
    if how == "query":
        return requests.get(url + "?" + build_query(body), timeout=5)
    return requests.post(url + ".json", json=body, timeout=5)


def refresh(portal: EmulatedPortal, refresh_token: str, **change: str) -> requests.Response:
    tokens = portal.app_tokens()
    query = {"grant_type": "refresh_token", "client_id": tokens["client_id"],
             "client_secret": tokens["client_secret"], "refresh_token": refresh_token, **change}
    return requests.get(portal.oauth_url + "oauth/token/", params=query, timeout=5)


@pytest.fixture
def app(source: EmulatedPortal, receiver: Any) -> EmulatedPortal:
    """The source portal with an application installed (handler and install path on the receiver)."""
    source.install_app(receiver.url + "/b24/handler", receiver.url + "/b24/install", "local.app1.00000001",
                       "s3cret-of-the-app", application_token="apptok-0001")
    receiver.wait(1)
    receiver.calls.clear()
    return source


ROBOT = {
    "CODE": "b24relay_send", "AUTH_USER_ID": 1, "USE_SUBSCRIPTION": "Y",
    "NAME": {"ru": "Отправить в ESB", "en": "Send to ESB"},
    "PROPERTIES": {"funnel": {"Name": {"en": "ESB funnel"}, "Type": "select", "Options": {"3": "ESB sales"},
                              "Required": "N"},
                   "note": {"Name": "Note", "Type": "text", "Default": "none"}},
    "RETURN_PROPERTIES": {"target_deal_id": {"Name": {"en": "ESB deal ID"}, "Type": "int"}},
    "DOCUMENT_TYPE": ["crm", "CCrmDocumentDeal", "DEAL"],
}


# -- install and the OAuth server ------------------------------------------------------------------------


def test_install_posts_onappinstall_exactly_as_documented(source, receiver):
    status, _ = source.install_app(receiver.url + "/b24/handler", receiver.url + "/b24/install",
                                   "local.app1.00000001", "s3cret", scope="crm,bizproc", version="3",
                                   language_id="ru", application_token="apptok-0001")
    assert status == 200
    call = receiver.wait(1)[0]
    assert call.path == "/b24/install" and call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    pairs = parse_qsl(call.body.decode())
    keys = [k for k, _ in pairs]
    assert keys == ["event", "data[VERSION]", "data[ACTIVE]", "data[INSTALLED]", "data[LANGUAGE_ID]", "ts",
                    "auth[domain]", "auth[scope]", "auth[access_token]", "auth[refresh_token]", "auth[expires_in]",
                    "auth[server_endpoint]", "auth[status]", "auth[client_endpoint]", "auth[member_id]",
                    "auth[application_token]"]
    body = parse_query(call.body.decode())
    assert body["event"] == "ONAPPINSTALL" and body["ts"].isdigit()
    assert body["data"] == {"VERSION": "3", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "ru"}
    tokens = source.app_tokens()
    assert body["auth"] == {
        "domain": "partner.bitrix24.test", "scope": "crm,bizproc", "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"], "expires_in": "3600",
        "server_endpoint": "https://oauth.bitrix.info/rest/", "status": "L",
        "client_endpoint": "https://partner.bitrix24.test/rest/", "member_id": source.config.member_id,
        "application_token": "apptok-0001"}
    with pytest.raises(ValueError, match="installed already"):
        source.install_app(receiver.url + "/b24/handler", None, "local.app1.00000001", "s3cret")


def test_rest_with_access_token_in_json_form_or_query_and_webhooks_still_work(app, rest):
    for how in ("json", "form", "query"):
        reply = app_call(app, "profile", how=how)
        assert reply.status_code == 200 and reply.json()["result"]["ID"] == "1", how
    deal = app_call(app, "crm.deal.add", {"fields": {"TITLE": "by the app"}}).json()["result"]
    assert app.deal(deal)["TITLE"] == "by the app"
    assert rest(app, "crm.deal.get", {"id": deal}).json()["result"]["TITLE"] == "by the app"
    assert "auth" not in app.requests[0].params  # the token is not kept in the request log
    missing = requests.post(app.app_rest_url + "profile.json", json={}, timeout=5)
    assert missing.status_code == 401 and missing.json()["error"] == "NO_AUTH_FOUND"


def test_refresh_rotates_the_pair_and_the_old_refresh_token_stops_working(app):
    before = app.app_tokens()
    reply = refresh(app, before["refresh_token"])
    assert reply.status_code == 200
    got = reply.json()
    assert sorted(got) == ["access_token", "client_endpoint", "domain", "expires", "expires_in", "member_id",
                           "refresh_token", "scope", "server_endpoint", "status", "user_id"]
    assert got["domain"] == "oauth.bitrix.info" and got["expires_in"] == 3600 and got["user_id"] == 1
    assert got["client_endpoint"] == "https://partner.bitrix24.test/rest/" and got["status"] == "L"
    assert abs(got["expires"] - (time.time() + 3600)) < 5
    assert got["refresh_token"] != before["refresh_token"] and got["access_token"] != before["access_token"]
    assert app.app_tokens()["refresh_token"] == got["refresh_token"]
    assert app_call(app, "profile", token=got["access_token"]).status_code == 200
    spent = refresh(app, before["refresh_token"])
    assert spent.status_code == 400 and spent.json()["error"] == "invalid_grant"
    assert refresh(app, "nonsense").json()["error"] == "invalid_grant"
    assert refresh(app, got["refresh_token"], client_secret="wrong").json()["error"] == "invalid_client"
    assert refresh(app, got["refresh_token"], client_id="local.other").json()["error"] == "invalid_client"
    assert refresh(app, got["refresh_token"], grant_type="password").json()["error"] == "invalid_request"
    assert app.oauth_refresh_count() == 5  # every refresh request counts, answered or refused
    assert refresh(app, got["refresh_token"]).status_code == 200  # refusals did not spend it


def test_expired_and_unknown_tokens(app):
    token = app.app_tokens()["access_token"]
    assert app.expire_tokens() >= 1
    reply = app_call(app, "profile", token=token)
    assert reply.status_code == 401
    assert {k: reply.json()[k] for k in ("error", "error_description")} == {
        "error": "expired_token", "error_description": "The access token provided has expired"}
    unknown = app_call(app, "profile", token="not-a-token")
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_token"
    fresh = refresh(app, app.app_tokens()["refresh_token"]).json()
    assert app_call(app, "profile", token=fresh["access_token"]).status_code == 200


def test_short_token_lifetime_expires_by_itself(make_portal, receiver):
    portal = make_portal(enforce_rate=False, token_lifetime=0.3)
    portal.install_app(receiver.url + "/h", None, "local.app2.00000002", "s")
    token = portal.app_tokens()["access_token"]
    assert app_call(portal, "profile", token=token).status_code == 200
    time.sleep(0.4)
    assert app_call(portal, "profile", token=token).json()["error"] == "expired_token"


# -- app-only methods through a webhook ------------------------------------------------------------------


@pytest.mark.parametrize("method, code, text", [
    ("event.bind", "WRONG_AUTH_TYPE", "Current authorization type is denied for this method"),
    ("event.unbind", "WRONG_AUTH_TYPE", "Current authorization type is denied for this method"),
    ("event.get", "WRONG_AUTH_TYPE", "Current authorization type is denied for this method"),
    ("event.offline.get", "WRONG_AUTH_TYPE", "Current authorization type is denied for this method"),
    ("event.offline.clear", "WRONG_AUTH_TYPE", "Current authorization type is denied for this method"),
    ("event.offline.error", "WRONG_AUTH_TYPE", "Current authorization type is denied for this method"),
    ("event.offline.list", "WRONG_AUTH_TYPE", "Current authorization type is denied for this method"),
    ("bizproc.robot.add", "ACCESS_DENIED", "Access denied! Application context required"),
    ("bizproc.robot.update", "ACCESS_DENIED", "Access denied! Application context required"),
    ("bizproc.robot.list", "ACCESS_DENIED", "Access denied! Application context required"),
    ("bizproc.robot.delete", "ACCESS_DENIED", "Access denied! Application context required"),
])
def test_app_only_methods_refuse_webhooks(app, rest, method, code, text):
    reply = rest(app, method, {"event": "ONCRMDEALUPDATE", "handler": "http://127.0.0.1/x", **ROBOT})
    assert reply.status_code == 403
    assert (reply.json()["error"], reply.json()["error_description"]) == (code, text)
    assert app.bindings() == [] and app.robots() == []


def test_batch_keeps_the_callers_context(app, rest):
    cmd = {"cmd": {"b": "event.get", "r": "bizproc.robot.list"}}
    by_webhook = rest(app, "batch", cmd).json()["result"]
    assert by_webhook["result_error"]["b"]["error"] == "WRONG_AUTH_TYPE"
    assert by_webhook["result_error"]["r"]["error"] == "ACCESS_DENIED"
    by_app = app_call(app, "batch", cmd).json()["result"]
    assert by_app["result"] == {"b": [], "r": []} and by_app["result_error"] == []


# -- robots ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, code, text", [
    ({"CODE": ""}, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Empty activity code!"),
    ({"CODE": "bad code!"}, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Wrong activity code!"),
    ({"HANDLER": "https://evil.example.com/robot"}, "ERROR_HANDLER_URL_MATCH",
     "Handler URL host doesn't match application URL"),
    ({"HANDLER": "ftp://127.0.0.1/robot"}, "ERROR_UNSUPPORTED_PROTOCOL", "Unsupported handler protocol"),
    ({"HANDLER": "not a url"}, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL"),
    ({"NAME": ""}, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Empty activity NAME!"),
    ({"PROPERTIES": "x"}, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Wrong properties array!"),
    ({"PROPERTIES": {"1st": {"Name": "x"}}}, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Wrong property key (1st)!"),
    ({"RETURN_PROPERTIES": {"ok": {"Type": "int"}}}, "ERROR_ACTIVITY_VALIDATION_FAILURE",
     "Empty property NAME (ok)!"),
    ({"RETURN_PROPERTIES": {"ok": {"Name": "x", "Type": "money"}}}, "ERROR_ACTIVITY_VALIDATION_FAILURE",
     "Unsupported property type (money)!"),
    ({"DOCUMENT_TYPE": ["crm"]}, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Wrong activity DOCUMENT_TYPE!"),
])
def test_robot_add_validation(app, receiver, change, code, text):
    reply = app_call(app, "bizproc.robot.add", {**ROBOT, "HANDLER": receiver.url + "/b24/robot", **change})
    assert reply.status_code == 400
    assert (reply.json()["error"], reply.json()["error_description"]) == (code, text)
    assert app.robots() == []


def test_robot_add_list_update_delete(app, receiver):
    handler = receiver.url + "/b24/robot"
    assert app_call(app, "bizproc.robot.add", {**ROBOT, "HANDLER": handler}).json()["result"] is True
    again = app_call(app, "bizproc.robot.add", {**ROBOT, "HANDLER": handler})
    assert again.status_code == 400 and again.json()["error"] == "ERROR_ACTIVITY_ALREADY_INSTALLED"
    form = app_call(app, "bizproc.robot.add", {**ROBOT, "CODE": "sms.robot-2", "HANDLER": handler}, how="form")
    assert form.status_code == 200
    assert app_call(app, "bizproc.robot.list").json()["result"] == ["b24relay_send", "sms.robot-2"]
    [robot, _] = app.robots()
    assert robot["PROPERTIES"]["funnel"]["OPTIONS"] == {"3": "ESB sales"} and robot["AUTH_USER_ID"] == 1
    assert app_call(app, "bizproc.robot.update", {"CODE": "b24relay_send", "FIELDS": {}}).json()[
        "error_description"] == "No fields to update"
    assert app_call(app, "bizproc.robot.update", {"CODE": "nope", "FIELDS": {"NAME": "x"}}).json()[
        "error"] == "ERROR_ACTIVITY_NOT_FOUND"
    bad = app_call(app, "bizproc.robot.update", {"CODE": "b24relay_send", "FIELDS": {"HANDLER": "https://x.org/r"}})
    assert bad.json()["error"] == "ERROR_HANDLER_URL_MATCH"
    ok = app_call(app, "bizproc.robot.update", {"CODE": "b24relay_send", "FIELDS": {"USE_SUBSCRIPTION": "N"}})
    assert ok.json()["result"] is True and app.robots()[0]["USE_SUBSCRIPTION"] == "N"
    assert app_call(app, "bizproc.robot.delete", {"CODE": "sms.robot-2"}).json()["result"] is True
    gone = app_call(app, "bizproc.robot.delete", {"CODE": "sms.robot-2"})
    assert (gone.json()["error"], gone.json()["error_description"]) == (
        "ERROR_ACTIVITY_NOT_FOUND", "Activity or Robot not found!")


def test_run_robot_posts_the_full_context_and_takes_one_answer(app, receiver, rest):
    app_call(app, "bizproc.robot.add", {**ROBOT, "HANDLER": receiver.url + "/b24/robot"})
    deal = app.add_deal({"TITLE": "robot me"})
    with pytest.raises(ValueError, match="no properties"):
        app.run_robot("b24relay_send", deal, {"colour": "red"})
    run = app.run_robot("b24relay_send", deal, {"funnel": "3"}, timeout_duration=60)
    assert run.status == 200
    call = receiver.wait(1)[0]
    assert call.path == "/b24/robot"
    body = parse_query(call.body.decode())
    assert [k for k in body] == ["workflow_id", "code", "document_id", "document_type", "event_token", "properties",
                                 "use_subscription", "timeout_duration", "ts", "auth"]
    assert body["workflow_id"] == run.workflow_id and body["event_token"] == run.event_token
    assert body["document_id"] == ["crm", "CCrmDocumentDeal", f"DEAL_{deal}"]
    assert body["properties"] == {"funnel": "3", "note": "none"}  # the default fills the unset one
    assert (body["use_subscription"], body["timeout_duration"], body["code"]) == ("Y", "60", "b24relay_send")
    auth = body["auth"]
    assert list(auth) == ["access_token", "expires", "expires_in", "scope", "domain", "server_endpoint", "status",
                          "client_endpoint", "member_id", "user_id", "refresh_token", "application_token"]
    assert auth["application_token"] == "apptok-0001" and auth["user_id"] == "1"
    assert app_call(app, "profile", token=auth["access_token"]).status_code == 200  # a real token
    assert refresh(app, auth["refresh_token"]).status_code == 200
    answer = {"EVENT_TOKEN": run.event_token, "RETURN_VALUES": {"target_deal_id": 501}, "LOG_MESSAGE": "sent"}
    assert app_call(app, "bizproc.event.send", answer).json()["result"] is True
    second = app_call(app, "bizproc.event.send", answer)
    assert second.status_code == 403 and second.json()["error_description"] == "Access denied!"
    [got] = app.robot_answers()
    assert (got["workflow_id"], got["deal_id"], got["RETURN_VALUES"], got["LOG_MESSAGE"]) == (
        run.workflow_id, deal, {"target_deal_id": 501}, "sent")
    assert app.robot_runs()[0]["status"] == "answered"


def test_a_robot_that_does_not_wait_takes_no_answer(app, receiver, rest):
    app_call(app, "bizproc.robot.add", {**ROBOT, "USE_SUBSCRIPTION": "N", "HANDLER": receiver.url + "/r"})
    run = app.run_robot("b24relay_send", app.add_deal({}))
    assert parse_query(receiver.wait(1)[0].body.decode())["use_subscription"] == "N"
    assert rest(app, "bizproc.event.send", {"EVENT_TOKEN": run.event_token}).status_code == 403
    assert app.robot_answers() == []


# -- online bindings -------------------------------------------------------------------------------------


def test_event_bind_online_get_unbind(app, receiver):
    handler = receiver.url + "/b24/events"
    assert app_call(app, "event.bind", {"event": "OnCrmDealUpdate", "handler": handler}).json()["result"] is True
    dup = app_call(app, "event.bind", {"event": "ONCRMDEALUPDATE", "handler": handler})
    assert dup.status_code == 400 and "Unable to set event handler" in dup.json()["error_description"]
    assert app_call(app, "event.bind", {"event": "ONCRMLEADTELEPORT", "handler": handler}).json() | {"time": 0} == {
        "error": "ERROR_EVENT_NOT_FOUND", "error_description": "Event not found", "time": 0}
    assert app_call(app, "event.bind", {"event": "ONCRMDEALADD"}).json()["error"] == "ERROR_ARGUMENT"
    assert app_call(app, "event.bind", {"event": "ONCRMDEALADD", "handler": "https://elsewhere.org/h"}).json()[
        "error"] == "ERROR_HANDLER_URL_MATCH"
    assert app_call(app, "event.bind", {"event": "ONOFFLINEEVENT", "event_type": "offline"}).json()[
        "error"] == "ERROR_ARGUMENT"
    app_call(app, "event.bind", {"event": "ONCRMDEALADD", "event_type": "offline"}, connector=CONNECTOR)
    assert app_call(app, "event.get").json()["result"] == [
        {"event": "ONCRMDEALUPDATE", "handler": handler, "auth_type": "0", "offline": 0},
        {"event": "ONCRMDEALADD", "connector_id": CONNECTOR, "offline": 1}]
    gone = app_call(app, "event.unbind", {"event": "ONCRMDEALUPDATE", "handler": handler})
    assert gone.json()["result"] == {"count": 1}
    none = app_call(app, "event.unbind", {"event": "ONCRMDEALADD", "event_type": "offline"})  # other connector
    assert none.json()["result"] == {"count": 0}
    assert [b["event"] for b in app.bindings()] == ["ONCRMDEALADD"]


def test_online_binding_posts_deal_changes_with_app_auth(app, receiver):
    app_call(app, "event.bind", {"event": "ONCRMDEALUPDATE", "handler": receiver.url + "/b24/events"})
    deal = app.add_deal({"TITLE": "x"})  # not bound: no call
    app.update_deal(deal, {"TITLE": "by a user"})
    app_call(app, "crm.deal.update", {"id": deal, "fields": {"TITLE": "by the app"}})  # REST writes fire too
    calls = receiver.wait(2)
    app.wait_deliveries()
    assert len(calls) == 2
    body = parse_query(calls[0].body.decode())
    assert (body["event"], body["data"], body["event_handler_id"]) == ("ONCRMDEALUPDATE", {"FIELDS": {"ID": str(deal)}},
                                                                       "1")
    assert list(body["auth"]) == ["access_token", "expires_in", "scope", "domain", "server_endpoint", "status",
                                  "client_endpoint", "member_id", "application_token"]
    assert body["auth"]["application_token"] == "apptok-0001"
    assert app_call(app, "profile", token=body["auth"]["access_token"]).status_code == 200
    assert {d["client_id"] for d in app.deliveries()} == {"local.app1.00000001"}


# -- the offline queue ------------------------------------------------------------------------------------


def _offline_bound(app: EmulatedPortal, *events: str) -> None:
    for event in events:
        reply = app_call(app, "event.bind", {"event": event, "event_type": "offline"}, connector=CONNECTOR)
        assert reply.json()["result"] is True


def test_offline_queue_keeps_the_latest_state_per_object(app):
    _offline_bound(app, "ONCRMDEALADD", "ONCRMDEALUPDATE")
    deal = app.add_deal({"TITLE": "v1"})
    for n in range(2, 5):
        app.update_deal(deal, {"TITLE": f"v{n}"})
    queue = app.offline_queue()
    assert [(r["EVENT_NAME"], r["EVENT_DATA"]) for r in queue] == [
        ("ONCRMDEALADD", {"FIELDS": {"ID": deal}}), ("ONCRMDEALUPDATE", {"FIELDS": {"ID": deal}})]
    assert all(len(r["MESSAGE_ID"]) == 32 and r["CONNECTOR"] == CONNECTOR for r in queue)
    other = app_call(app, "event.offline.get", {"clear": 0})  # no connector: the queue without a source
    assert set(other.json()["result"]) == {"process_id", "events"} and other.json()["result"]["events"] == []
    got = app_call(app, "event.offline.get", {}, connector=CONNECTOR).json()["result"]  # clear=1 by default
    assert got["process_id"] is None
    assert [sorted(e) for e in got["events"]] == [sorted(["ID", "TIMESTAMP_X", "EVENT_NAME", "EVENT_DATA",
                                                          "EVENT_ADDITIONAL", "MESSAGE_ID"])] * 2
    assert got["events"][1]["EVENT_ADDITIONAL"] == {"user_id": 1}
    assert app.offline_queue() == []


def test_reserve_clear_error_and_disjoint_parallel_gets(app):
    _offline_bound(app, "ONCRMDEALUPDATE")
    deals = [app.add_deal({"TITLE": str(n)}) for n in range(6)]
    for deal in deals:
        app.update_deal(deal, {"TITLE": "changed"})
    with ThreadPoolExecutor(3) as pool:
        batches = list(pool.map(lambda _: app_call(app, "event.offline.get", {"clear": 0, "limit": 2},
                                                   connector=CONNECTOR).json()["result"], range(3)))
    ids = [e["EVENT_DATA"]["FIELDS"]["ID"] for b in batches for e in b["events"]]
    assert sorted(ids) == deals and len({b["process_id"] for b in batches}) == 3
    first = batches[0]
    again = app_call(app, "event.offline.get", {"process_id": first["process_id"]}, connector=CONNECTOR)
    assert [e["ID"] for e in again.json()["result"]["events"]] == [e["ID"] for e in first["events"]]  # and cleared
    second, third = batches[1], batches[2]
    ok, bad = second["events"]
    assert app_call(app, "event.offline.clear", {"process_id": second["process_id"], "message_id": [ok["MESSAGE_ID"]]},
                    connector=CONNECTOR).json()["result"] is True
    assert app_call(app, "event.offline.error", {"process_id": second["process_id"],
                                                 "message_id": [bad["MESSAGE_ID"]]}, connector=CONNECTOR).ok
    listed = app_call(app, "event.offline.list", {}, connector=CONNECTOR).json()
    assert listed["total"] == 3
    assert {(r["MESSAGE_ID"], r["PROCESS_ID"], r["ERROR"]) for r in listed["result"]} == {
        (bad["MESSAGE_ID"], "", "1"),
        *((e["MESSAGE_ID"], third["process_id"], "0") for e in third["events"])}
    app.update_deal(bad["EVENT_DATA"]["FIELDS"]["ID"], {"TITLE": "once more"})  # stays one erroneous record
    assert app_call(app, "event.offline.get", {"clear": 0}, connector=CONNECTOR).json()["result"]["events"] == []
    errors = app_call(app, "event.offline.get", {"error": 1}, connector=CONNECTOR).json()["result"]["events"]
    assert [e["MESSAGE_ID"] for e in errors] == [bad["MESSAGE_ID"]]
    wrong = app_call(app, "event.offline.clear", {"process_id": third["process_id"], "message_id": ["short"]},
                     connector=CONNECTOR)
    assert wrong.status_code == 400 and wrong.json()["error"] == "ERROR_ARGUMENT"
    assert app_call(app, "event.offline.clear", {}, connector=CONNECTOR).json()["error"] == "ERROR_ARGUMENT"
    app_call(app, "event.offline.clear", {"process_id": third["process_id"]}, connector=CONNECTOR)
    assert app.offline_queue() == []


def test_a_change_to_a_reserved_object_is_a_new_record_and_error_merges_them(app):
    _offline_bound(app, "ONCRMDEALUPDATE")
    deal, other = app.add_deal({}), app.add_deal({})
    app.update_deal(deal, {"TITLE": "1"})
    app.update_deal(other, {"TITLE": "1"})
    reserved = app_call(app, "event.offline.get", {"clear": 0, "limit": 1, "order": {"ID": "DESC"}},
                        connector=CONNECTOR).json()["result"]
    [item] = reserved["events"]
    assert item["EVENT_DATA"] == {"FIELDS": {"ID": other}}  # order honoured
    app.update_deal(other, {"TITLE": "2"})  # reserved: a new, unreserved copy
    listed = app_call(app, "event.offline.list", {"filter": {"=MESSAGE_ID": item["MESSAGE_ID"]}},
                      connector=CONNECTOR).json()["result"]
    assert sorted(r["PROCESS_ID"] for r in listed) == sorted(["", reserved["process_id"]])
    app_call(app, "event.offline.error", {"process_id": reserved["process_id"], "message_id": [item["MESSAGE_ID"]]},
             connector=CONNECTOR)
    rows = app_call(app, "event.offline.list", {"order": {"ID": "ASC"}}, connector=CONNECTOR).json()["result"]
    assert [(r["EVENT_DATA"]["FIELDS"]["ID"], r["PROCESS_ID"], r["ERROR"]) for r in rows] == [
        (deal, "", "0"), (other, "", "1")]
    later = app_call(app, "event.offline.list", {"filter": {">ID": rows[0]["ID"]}}, connector=CONNECTOR).json()
    assert [r["ID"] for r in later["result"]] == [rows[1]["ID"]] and later["total"] == 1


def test_own_writes_with_the_connector_do_not_come_back(app, rest):
    _offline_bound(app, "ONCRMDEALUPDATE")
    app_call(app, "event.bind", {"event": "ONCRMDEALUPDATE", "event_type": "offline"})  # a queue without a source
    deal = app.add_deal({"TITLE": "x"})
    app_call(app, "crm.deal.update", {"id": deal, "fields": {"TITLE": "relay"}}, connector=CONNECTOR)
    assert [r["CONNECTOR"] for r in app.offline_queue()] == [""]  # only the other queue got it
    app_call(app, "event.offline.get", {})  # empties the queue without a source
    app_call(app, "crm.deal.update", {"id": deal, "fields": {"TITLE": "no key"}})
    rest(app, "crm.deal.update", {"id": deal, "fields": {"TITLE": "webhook"}, "auth_connector": CONNECTOR})
    assert sorted(r["CONNECTOR"] for r in app.offline_queue()) == ["", CONNECTOR]


def test_onofflineevent_pings_at_most_once_per_min_timeout(app, receiver):
    _offline_bound(app, "ONCRMDEALUPDATE")
    app_call(app, "event.bind", {"event": "ONOFFLINEEVENT", "handler": receiver.url + "/b24/ping",
                                 "options": {"minTimeout": 30}}, connector=CONNECTOR)
    deal = app.add_deal({})
    app.update_deal(deal, {"TITLE": "a"})
    app.update_deal(deal, {"TITLE": "b"})
    app.add_deal({})  # no ONCRMDEALADD binding: nothing queued, no ping
    receiver.wait(2, timeout=1.0)
    app.wait_deliveries()
    [ping] = receiver.calls
    body = parse_query(ping.body.decode())
    assert body["event"] == "ONOFFLINEEVENT" and "data" not in body
    assert body["auth"]["refresh_token"] and body["auth"]["application_token"] == "apptok-0001"


# -- uninstall and the control API -------------------------------------------------------------------------


def test_uninstall_revokes_everything_and_posts_onappuninstall(app, receiver):
    old = app.app_tokens()
    app_call(app, "event.bind", {"event": "ONAPPUNINSTALL", "handler": receiver.url + "/b24/handler"})
    app_call(app, "bizproc.robot.add", {**ROBOT, "HANDLER": receiver.url + "/r"})
    _offline_bound(app, "ONCRMDEALUPDATE")
    app.update_deal(app.add_deal({}), {"TITLE": "queued"})
    [(status, _)] = app.uninstall_app(clean=False)
    assert status == 200
    body = parse_query(receiver.wait(1)[0].body.decode())
    assert body["event"] == "ONAPPUNINSTALL" and body["data"] == {"LANGUAGE_ID": "en", "CLEAN": "0"}
    assert body["auth"] == {"domain": "partner.bitrix24.test", "server_endpoint": "https://oauth.bitrix.info/rest/",
                            "client_endpoint": "https://partner.bitrix24.test/rest/",
                            "member_id": app.config.member_id, "application_token": "apptok-0001"}
    assert app.bindings() == [] and app.offline_queue() == []
    after = app_call(app, "profile", token=old["access_token"])
    assert after.status_code == 401 and after.json()["error"] == "invalid_token"
    gone = requests.get(app.oauth_url + "oauth/token/", timeout=5, params={
        "grant_type": "refresh_token", "client_id": old["client_id"], "client_secret": old["client_secret"],
        "refresh_token": old["refresh_token"]})
    assert gone.status_code == 400 and gone.json()["error"] == "invalid_client"
    with pytest.raises(ValueError, match="no application"):
        app.app_tokens()


def test_control_api_installs_expires_and_runs_robots(source, receiver):
    emu = source.control_url + "app"
    installed = requests.post(emu + "/install", json={"handler_url": receiver.url + "/h",
                                                      "install_url": receiver.url + "/i"}, timeout=5).json()
    assert installed["status"] == 200 and installed["client_id"].startswith("local.")
    info = requests.get(emu, timeout=5).json()
    assert info["access_token"] == installed["access_token"] and info["refresh_count"] == 0
    assert requests.post(emu + "/expire_tokens", json={}, timeout=5).json()["expired"] == 1
    assert app_call(source, "profile").json()["error"] == "expired_token"
    token = refresh(source, source.app_tokens()["refresh_token"]).json()["access_token"]
    app_call(source, "bizproc.robot.add", {**ROBOT, "HANDLER": receiver.url + "/r"}, token=token)
    deal = source.add_deal({})
    run = requests.post(emu + "/run_robot", json={"code": "b24relay_send", "deal_id": deal}, timeout=5).json()
    assert run["status"] == 200 and run["event_token"].startswith(run["workflow_id"])
    assert [r["CODE"] for r in requests.get(emu + "/robots", timeout=5).json()] == ["b24relay_send"]
    assert requests.get(emu + "/robot_runs", timeout=5).json()[0]["status"] == "waiting"
    assert requests.post(emu + "/uninstall", json={}, timeout=5).json() == {"posts": []}
