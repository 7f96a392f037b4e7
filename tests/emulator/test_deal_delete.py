"""ONCRMDEALDELETE: queued by crm.deal.delete / a user's delete to bound handlers, and send_event."""

from __future__ import annotations

from urllib.parse import parse_qsl


def test_rest_delete_fires_bound_delete_event(source, rest, receiver):
    source.bind_outgoing(receiver.url + "/hook", ["ONCRMDEALDELETE"], "deltok", include_rest=True)
    deal_id = source.add_deal({"TITLE": "doomed"})
    reply = rest(source, "crm.deal.delete", {"id": deal_id})
    assert reply.status_code == 200 and reply.json()["result"] is True
    call = receiver.wait(1)[0]
    source.wait_deliveries()
    body = dict(parse_qsl(call.body.decode()))
    assert body["event"] == "ONCRMDEALDELETE" and body["data[FIELDS][ID]"] == str(deal_id)
    assert body["auth[application_token]"] == "deltok"
    assert source.deliveries() == [{"handler_url": receiver.url + "/hook", "event": "ONCRMDEALDELETE",
                                    "deal_id": deal_id, "status": 200}]
    again = rest(source, "crm.deal.delete", {"id": deal_id})
    assert again.status_code == 400 and again.json()["error_description"] == "Not found"


def test_user_delete_and_batch_delete_fire_events(source, rest, receiver):
    source.bind_outgoing(receiver.url + "/hook", ["ONCRMDEALDELETE"], include_rest=True)
    a, b = source.add_deal({}), source.add_deal({})
    source.delete_deal(a)
    rest(source, "batch", {"cmd": {"del": f"crm.deal.delete?id={b}", "gone": f"crm.deal.delete?id={a}"}})
    calls = receiver.wait(2)
    source.wait_deliveries()
    assert sorted(dict(parse_qsl(c.body.decode()))["data[FIELDS][ID]"] for c in calls) == sorted([str(a), str(b)])


def test_send_event_delete(source, receiver):
    status, _ = source.send_event(receiver.url + "/e", "ONCRMDEALDELETE", 1765, "tok")
    assert status == 200
    body = dict(parse_qsl(receiver.wait(1)[0].body.decode()))
    assert body["event"] == "ONCRMDEALDELETE" and body["data[FIELDS][ID]"] == "1765"
