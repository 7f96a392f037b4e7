"""Decoding and authenticating handler calls (pure), with bodies as Bitrix24 sends them."""

import json

import pytest

from relay.errors import BadRequest, Forbidden
from relay.intake.bitrix24 import SourceAuth, decode_body, interpret

TOKEN = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas"
MEMBER = "d897063e1ce7c5eb9f04b9751eef5915"
FORM = "application/x-www-form-urlencoded"
# the documented outgoing-webhook body (api-reference/events/index.md), one line on the wire
EVENT_BODY = (
    "event=ONCRMDEALUPDATE&event_handler_id=975&data%5BFIELDS%5D%5BID%5D=7405&ts=1766047124"
    "&auth%5Bdomain%5D=some-domain.bitrix24.com"
    "&auth%5Bclient_endpoint%5D=https%3A%2F%2Fsome-domain.bitrix24.com%2Frest%2F"
    "&auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F"
    f"&auth%5Bmember_id%5D={MEMBER}&auth%5Bapplication_token%5D={TOKEN}"
)
ROBOT_BODY = "document_id[0]=crm&document_id[1]=CCrmDocumentDeal&document_id[2]=DEAL_123"
SOURCE = SourceAuth(application_token=TOKEN, robot_key="robot-key-123456")


def call(body: str, ctype: str = FORM, key: str | None = None, source: SourceAuth = SOURCE):
    return interpret(decode_body(body.encode(), ctype), key, source)


def test_documented_event_body() -> None:
    got = call(EVENT_BODY)
    assert (got.kind, got.trigger, got.deal_id) == ("deal", "ONCRMDEALUPDATE", "7405")


def test_literal_brackets_are_accepted_too() -> None:
    body = EVENT_BODY.replace("%5B", "[").replace("%5D", "]")
    assert call(body).deal_id == "7405"


def test_json_replay_nested_and_flat() -> None:
    nested = {"event": "ONCRMDEALADD", "data": {"FIELDS": {"ID": 12}}, "auth": {"application_token": TOKEN}}
    assert call(json.dumps(nested), "application/json").deal_id == "12"
    flat = {"event": "ONCRMDEALADD", "data[FIELDS][ID]": "13", "auth[application_token]": TOKEN}
    assert call(json.dumps(flat), FORM).deal_id == "13"  # curl -d sends JSON as "form"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (EVENT_BODY.replace(TOKEN, "x" * 32), r"wrong auth\[application_token\]"),
        (EVENT_BODY.replace(f"&auth%5Bapplication_token%5D={TOKEN}", ""), "no credentials"),
    ],
)
def test_bad_event_credentials(body: str, message: str) -> None:
    with pytest.raises(Forbidden, match=message):
        call(body)


def test_events_refused_when_source_has_no_token() -> None:
    with pytest.raises(Forbidden):
        call(EVENT_BODY, source=SourceAuth(robot_key="robot-key-123456"))


def test_member_id_pinning() -> None:
    pinned = SourceAuth(application_token=TOKEN, member_id=MEMBER, domain="some-domain.bitrix24.com")
    assert call(EVENT_BODY, source=pinned).deal_id == "7405"
    with pytest.raises(Forbidden, match="member_id"):
        call(EVENT_BODY, source=SourceAuth(application_token=TOKEN, member_id="0" * 32))
    with pytest.raises(Forbidden, match="domain"):
        call(EVENT_BODY, source=SourceAuth(application_token=TOKEN, domain="other.bitrix24.com"))


def test_robot_needs_key() -> None:
    assert call(ROBOT_BODY, key="robot-key-123456").deal_id == "123"
    with pytest.raises(Forbidden):
        call(ROBOT_BODY)
    with pytest.raises(Forbidden):
        call(ROBOT_BODY, key="robot-key-WRONG")


def test_application_robot_uses_application_token() -> None:
    body = ROBOT_BODY + f"&event_token=abc&auth[application_token]={TOKEN}&auth[member_id]={MEMBER}"
    got = call(body)
    assert (got.trigger, got.deal_id, got.event_token) == ("APP_ROBOT", "123", "abc")


def test_unhandled_but_well_formed() -> None:
    assert call(EVENT_BODY.replace("ONCRMDEALUPDATE", "ONCRMDEALDELETE")).kind == "ignored"
    lead = ROBOT_BODY.replace("CCrmDocumentDeal", "CCrmDocumentLead").replace("DEAL_", "LEAD_")
    assert call(lead, key="robot-key-123456").kind == "ignored"


@pytest.mark.parametrize(
    ("body", "ctype", "message"),
    [
        ("", FORM, "empty body"),
        ("hello=world", FORM, "neither 'event' nor 'document_id'"),
        ("{not json", "application/json", "not valid JSON"),
        ("[1,2]", "application/json", "must be an object"),
        ("<xml/>", "application/xml", "unsupported Content-Type"),
        (f"event=ONCRMDEALUPDATE&auth[application_token]={TOKEN}", FORM, r"data\[FIELDS\]\[ID\] is missing"),
        (f"event=ONCRMDEALUPDATE&data[FIELDS][ID]=abc&auth[application_token]={TOKEN}", FORM, "positive integer"),
    ],
)
def test_malformed(body: str, ctype: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        call(body, ctype)


def test_malformed_robot_document_id() -> None:
    with pytest.raises(BadRequest, match="DEAL_123"):
        call("document_id[0]=crm&document_id[1]=CCrmDocumentDeal&document_id[2]=DEAL_x", key="robot-key-123456")
