"""Outgoing calls: event, "Webhook" robot and app-robot bodies exactly as Bitrix24 posts them."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import requests

from relay.phpquery import parse_query


def test_send_event_form_body_is_byte_exact(source, receiver):
    cfg = source.config
    status, body = source.send_event(receiver.url + "/b24/events", "ONCRMDEALUPDATE", 7405, "tok123")
    assert (status, body) == (200, "ok")
    call = receiver.wait(1)[0]
    assert call.path == "/b24/events"
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    raw = call.body.decode()
    ts = dict(parse_qsl(raw))["ts"]
    assert ts.isdigit()
    expected = (
        f"event=ONCRMDEALUPDATE&event_handler_id=1&data%5BFIELDS%5D%5BID%5D=7405&ts={ts}"
        f"&auth%5Bdomain%5D={cfg.domain}"
        f"&auth%5Bclient_endpoint%5D=https%3A%2F%2F{cfg.domain}%2Frest%2F"
        "&auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F"
        f"&auth%5Bmember_id%5D={cfg.member_id}"
        "&auth%5Bapplication_token%5D=tok123"
    )
    assert raw == expected
    assert "access_token" not in raw  # outgoing webhooks never carry OAuth tokens


def test_send_event_json_replay_and_extra(source, receiver):
    source.send_event(receiver.url + "/e", "ONCRMDEALMOVETOCATEGORY", 12, None, encoding="json",
                      extra={"data": {"FIELDS": {"CATEGORY_ID": "1", "STAGE_ID": "C1:NEW"}}})
    call = receiver.wait(1)[0]
    data = json.loads(call.body)
    assert data["data"]["FIELDS"] == {"ID": "12", "CATEGORY_ID": "1", "STAGE_ID": "C1:NEW"}
    assert data["auth"]["application_token"] == source.config.application_token
    assert data["auth"]["member_id"] == source.config.member_id


def test_send_robot_body_has_only_document_id_and_keeps_query(source, receiver):
    status, _ = source.send_robot(receiver.url + "/b24/robot?key=s3cret", 123)
    assert status == 200
    call = receiver.wait(1)[0]
    assert call.path == "/b24/robot?key=s3cret"
    assert call.body == (b"document_id%5B0%5D=crm&document_id%5B1%5D=CCrmDocumentDeal"
                         b"&document_id%5B2%5D=DEAL_123")


def test_send_app_robot_body_and_event_token_round_trip(source, receiver, rest):
    source.send_app_robot(receiver.url + "/robot", 55, "apptok", None, properties={"target": "ESB"})
    fields = parse_query(receiver.wait(1)[0].body.decode())
    assert fields["code"] == "relay_deal"
    assert fields["document_id"] == ["crm", "CCrmDocumentDeal", "DEAL_55"]
    assert fields["document_type"] == ["crm", "CCrmDocumentDeal", "DEAL"]
    assert fields["properties"] == {"target": "ESB"}
    assert fields["use_subscription"] == "Y" and fields["timeout_duration"].isdigit()
    assert fields["workflow_id"] == fields["event_token"].split("|")[0]
    auth = fields["auth"]
    assert auth["application_token"] == "apptok" and auth["member_id"] == source.config.member_id
    assert auth["user_id"] == "1" and auth["access_token"] and auth["domain"] == source.config.domain
    reply = rest(source, "bizproc.event.send", {"EVENT_TOKEN": fields["event_token"],
                                                "RETURN_VALUES": {"ok": "Y"}})
    assert reply.status_code == 200 and reply.json()["result"] is True


def test_bound_handler_fires_once_per_user_action(source, receiver, rest):
    source.bind_outgoing(receiver.url + "/hook", ["ONCRMDEALADD", "ONCRMDEALUPDATE"], "bindtok")
    deal_id = source.add_deal({"TITLE": "by user"})
    source.update_deal(deal_id, {"TITLE": "edited"})
    rest(source, "crm.deal.update", {"id": deal_id, "fields": {"TITLE": "by REST"}})  # not bound
    calls = receiver.wait(2)
    source.wait_deliveries()
    events = sorted(dict(parse_qsl(c.body.decode()))["event"] for c in calls)
    assert events == ["ONCRMDEALADD", "ONCRMDEALUPDATE"]
    assert all(dict(parse_qsl(c.body.decode()))["auth[application_token]"] == "bindtok" for c in calls)
    assert {d["status"] for d in source.deliveries()} == {200}


def test_control_api_triggers_event_and_robot(source, receiver):
    emu = source.url + "/_emu"
    reply = requests.post(emu + "/send_event", timeout=5, json={
        "handler_url": receiver.url + "/ev", "event": "ONCRMDEALADD", "deal_id": 9,
        "application_token": "t", "encoding": "form"})
    assert reply.json() == {"status": 200, "body": "ok"}
    requests.post(emu + "/send_robot", json={"handler_url": receiver.url + "/rb", "deal_id": 9}, timeout=5)
    calls = receiver.wait(2)
    assert dict(parse_qsl(calls[0].body.decode()))["data[FIELDS][ID]"] == "9"
    assert calls[1].body.endswith(b"DEAL_9")
    unreachable = requests.post(emu + "/send_robot", timeout=5,
                                json={"handler_url": "http://127.0.0.1:9/x", "deal_id": 1})
    assert unreachable.status_code == 502
