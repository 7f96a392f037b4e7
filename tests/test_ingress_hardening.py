"""Ingress hardening (issue 7, points 4 and 5): linear, bounded decoding; cheap checks first; 400, never 500.

Pure checks of :mod:`relay.phpquery` and :mod:`relay.intake.bitrix24`, then the same rules through the
relay's real HTTP port.  The served (gunicorn) checks — thread exhaustion and the fuzzer — are in
``test_ingress_served.py``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

from relay.config import IngressConfig
from relay.emulator.sender import FORM, app_robot_payload, event_payload, robot_payload
from relay.errors import BadRequest, Forbidden
from relay.intake.bitrix24 import BodyLimits, SourceAuth, check_key, decode_body, decode_pairs, interpret
from relay.phpquery import build_query, nest_mapping, nest_pairs, parse_query, split_key
from tests.relayenv import APP_TOKEN, ROBOT_KEY, RelayEnv

JSON = "application/json"
TOKEN = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas"
SOURCE = SourceAuth(application_token=TOKEN, robot_key="robot-key-123456")
LIMITS = BodyLimits(max_fields=1000, max_depth=16)


def profile_events(fn: Callable[[], Any]) -> int:
    """How many Python and C function calls ``fn`` makes: a deterministic measure of its work."""
    count = 0

    def profiler(_frame: Any, _event: str, _arg: Any) -> None:
        nonlocal count
        count += 1

    sys.setprofile(profiler)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


# --- phpquery: linear, PHP semantics -----------------------------------------------------------


@pytest.mark.parametrize("body", ["a[]=x&", "a[b][]=x&", "a[][b]=x&", "a[0]=x&a[]=y&"])
def test_appending_is_linear(body: str) -> None:
    """4x the ``a[]`` keys costs ~4x the work (it was ~16x: every append counted the keys so far)."""
    small = profile_events(lambda: parse_query(body * 500))
    large = profile_events(lambda: parse_query(body * 2000))
    assert large / small < 5, (small, large)


def test_listifying_many_keys_is_linear() -> None:
    small = profile_events(lambda: parse_query("&".join(f"a[{i}]=x" for i in reversed(range(500)))))
    large = profile_events(lambda: parse_query("&".join(f"a[{i}]=x" for i in reversed(range(2000)))))
    assert large / small < 5, (small, large)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a[]=x&a[]=y&a[]=z", {"a": ["x", "y", "z"]}),
        ("a[5]=x&a[]=y", {"a": {"5": "x", "6": "y"}}),  # next free key = largest integer key + 1
        ("a[2]=x&a[0]=y&a[]=z&a[1]=w", {"a": ["y", "w", "x", "z"]}),  # a[] took 3
        ("a[1]=x&a[0]=y", {"a": ["y", "x"]}),  # keys 0..n-1 in any order: a list
        ("a[]=x&a[0]=y", {"a": ["y"]}),  # later keys win
        ("a[07]=x&a[]=y", {"a": {"07": "x", "0": "y"}}),  # "07" stays a string key, like PHP
        ("a[-1]=x&a[]=y", {"a": {"-1": "x", "0": "y"}}),
        ("a[%C2%B2]=x", {"a": {"²": "x"}}),  # a unicode digit is not an integer key (int("²") fails)
        (f"a[{'9' * 5000}]=x&a[]=y", {"a": {"9" * 5000: "x", "0": "y"}}),  # over int()'s 4300 digits
        ("a[9223372036854775807]=x&a[]=y", {"a": {"9223372036854775807": "x", "9223372036854775808": "y"}}),
        ("a=1&a[b]=2", {"a": {"b": "2"}}),
        ("a[b]=1&a=2", {"a": "2"}),
        ("a[][b]=1&a[][b]=2", {"a": [{"b": "1"}, {"b": "2"}]}),
        ("a[b][=1&]]=2&[x]=3&a]=4&a[b]c=5", {"a[b][": "1", "]]": "2", "[x]": "3", "a]": "4", "a[b]c": "5"}),
        ("a[b]%0A=1&a%0A[b]=2", {"a[b]\n": "1", "a\n": {"b": "2"}}),
        ("a[b=1&a[[b]]=2", {"a[b": "1", "a[[b]]": "2"}),
        ("a%00[b%00]=%00", {"a\x00": {"b\x00": "\x00"}}),
        ("0=a&1=b", {}),  # a top level that would be a list is no object at all
    ],
)
def test_php_semantics(query: str, expected: dict[str, Any]) -> None:
    assert parse_query(query) == expected


def test_keys_nesting_deeper_than_max_depth_stay_flat() -> None:
    ok, deep = "a" + "[x]" * 16, "a" + "[x]" * 17
    assert split_key(ok) == ["a"] + ["x"] * 16 and split_key(deep) == [deep]
    assert split_key(deep, max_depth=20) == ["a"] + ["x"] * 17
    assert parse_query(f"{deep}=1", max_depth=16) == {deep: "1"}


def test_bracket_keys_into_decoded_json_values() -> None:
    got = nest_mapping({"a": ["x"], "a[]": "y", "b": {"3": 1}, "b[]": 2, "c": 5, "c[d]": 1, "e[0]": "z"})
    assert got == {"a": ["x", "y"], "b": {"3": 1, "4": 2}, "c": {"d": 1}, "e": ["z"]}


def test_results_are_plain_dicts_and_lists() -> None:
    got = nest_pairs([("a[b][]", "1"), ("c[x]", "2")])
    assert type(got) is dict and type(got["a"]) is dict and type(got["a"]["b"]) is list and type(got["c"]) is dict


def test_round_trip_of_real_payloads() -> None:
    from relay.emulator.config import PortalConfig

    config = PortalConfig(domain="p.bitrix24.com")
    for payload in (event_payload(config, "ONCRMDEALUPDATE", 7405, TOKEN), robot_payload(5),
                    app_robot_payload(config, 5, TOKEN, "wf|A1|sig", properties={"list": ["a", "b"]})):
        assert parse_query(build_query(payload)) == payload


# --- inbound: cheap checks first, bounded, every malformed body a BadRequest --------------------


def test_fields_are_counted_in_the_raw_bytes_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("parsed a body that has too many fields")

    monkeypatch.setattr("relay.intake.bitrix24.parse_query", boom)
    for body in (b"a[]=x&" * 1000, b"&" * 1000, b"a[]=x&" * 45000):
        with pytest.raises(BadRequest, match=r"too many fields: more than 1000 \(ingress.max_fields\)"):
            decode_body(body, FORM, LIMITS)


def test_max_fields_is_inclusive_and_configurable() -> None:
    assert len(decode_body("&".join(f"f{i}=x" for i in range(1000)).encode(), FORM, LIMITS)) == 1000
    with pytest.raises(BadRequest, match="more than 10 "):
        decode_body("&".join(f"f{i}=x" for i in range(11)).encode(), FORM, BodyLimits(max_fields=10))


def test_multipart_fields_have_the_same_limits() -> None:
    assert decode_pairs([("document_id[]", "crm"), ("x", "1")], LIMITS) == {"document_id": ["crm"], "x": "1"}
    with pytest.raises(BadRequest, match="too many fields"):
        decode_pairs([("a[]", "x")] * 1001, LIMITS)
    with pytest.raises(BadRequest, match="empty body"):
        decode_pairs([], LIMITS)


def deep_json(depth: int, leaf: str = "1") -> str:
    return '{"event": "ONCRMDEALADD", "x": ' + '{"a": ' * depth + leaf + "}" * depth + "}"


@pytest.mark.parametrize("depth", [17, 100, 990, 5000, 100_000])
def test_deep_json_is_refused_with_400(depth: int) -> None:
    with pytest.raises(BadRequest, match=r"JSON nests deeper than 16 levels \(ingress.max_depth\)"):
        decode_body(deep_json(depth).encode(), JSON, LIMITS)
    with pytest.raises(BadRequest, match="deeper than 16"):
        decode_body(('{"a": ' + "[" * depth + "]" * depth + "}").encode(), JSON, LIMITS)


def test_json_depth_counts_like_bracket_keys() -> None:
    assert decode_body(deep_json(16).encode(), JSON, LIMITS)["x"]  # as deep as x[a]...[a] with 16 brackets
    with pytest.raises(BadRequest, match="deeper than 16"):
        decode_body(deep_json(17).encode(), JSON, LIMITS)


def test_too_many_json_values() -> None:
    body = json.dumps({"event": "ONCRMDEALADD", "list": list(range(1000))}).encode()
    with pytest.raises(BadRequest, match=r"too many JSON values: more than 1000 \(ingress.max_fields\)"):
        decode_body(body, JSON, LIMITS)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"data": {"FIELDS": {"ID": 1' + "0" * 5000 + "}}}", "JSON number with 5001 characters"),
        ('{"ID": -' + "9" * 4301 + "}", "JSON number with 4302 characters"),
        ('{"ID": 1.' + "5" * 200 + "}", "JSON number with 202 characters"),
        ('{"ID": 1e999}', "out of range"),
        ('{"ID": -1e400}', "out of range"),
        ('{"ID": NaN}', "NaN is not valid JSON"),
        ('{"ID": -Infinity}', "-Infinity is not valid JSON"),
        ('{"ID": 1', "not valid JSON: Expecting ',' delimiter at line 1 column 9"),
        ('{"a": "\x00"}', "Invalid control character"),
        ("\ufeff{}", "not valid JSON"),
        ('{"event": "ONCRMDEALADD", "auth": {"application_token": "x\\ud800"}}', "lone surrogate at character 1"),
        ('{"\\udc00": 1}', "lone surrogate"),
        ("[1, 2]", "must be an object"),
        ('"event=ONCRMDEALADD"', "must be an object"),
        ("null", "must be an object"),
        ("12", "must be an object"),
        ("", "empty body"),
        (" \r\n\t", "empty body"),
    ],
)
def test_malformed_json(body: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        decode_body(body.encode(), JSON, LIMITS)


@pytest.mark.parametrize("ctype", [JSON, FORM, "text/plain", ""])
def test_invalid_utf8_is_400(ctype: str) -> None:
    for body in (b'{"event": "\xff"}', b"event=\xc3(&x=1", b"\xed\xa0\x80=1"):
        with pytest.raises(BadRequest, match="not UTF-8"):
            decode_body(body, ctype, LIMITS)


@pytest.mark.parametrize("ctype", ["application/xml", "multipart/mixed", "x" * 5000, "application/json5"])
def test_unsupported_content_types_name_themselves_briefly(ctype: str) -> None:
    with pytest.raises(BadRequest, match="unsupported Content-Type") as info:
        decode_body(b"event=ONCRMDEALADD", ctype, LIMITS)
    assert len(info.value.message) < 200


def test_key_is_checked_without_the_body() -> None:
    check_key("robot-key-123456", SOURCE)
    check_key(None, SOURCE)  # the body may carry the application token
    for key in ("robot-key-WRONG", "", "robot-key-1234567"):
        with pytest.raises(Forbidden, match="wrong key"):
            check_key(key, SOURCE)
    robot_only = SourceAuth(robot_key="robot-key-123456")
    with pytest.raises(Forbidden, match="accepts only calls with"):
        check_key(None, robot_only)
    with pytest.raises(Forbidden, match="accepts no calls"):
        check_key(None, SourceAuth())
    events_only = SourceAuth(application_token=TOKEN)
    check_key("anything", events_only)  # no robot key: the application token decides


def test_a_wrong_key_is_refused_even_with_a_valid_token() -> None:
    body = f"event=ONCRMDEALUPDATE&data[FIELDS][ID]=5&auth[application_token]={TOKEN}"
    assert interpret(decode_body(body.encode(), FORM), None, SOURCE).deal_id == "5"
    with pytest.raises(Forbidden, match="wrong key"):
        interpret(decode_body(body.encode(), FORM), "robot-key-WRONG", SOURCE)


def call_json(payload: dict[str, Any], key: str | None = "robot-key-123456") -> Any:
    return interpret(decode_body(json.dumps(payload).encode(), JSON), key, SOURCE)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"event": ["ONCRMDEALADD"]}, "event must be a string, got list"),
        ({"event": {"a": 1}}, "event must be a string, got dict"),
        ({"event": 5}, "event must be a string, got int"),
        ({"event": None}, "event must be a string, got NoneType"),
        ({"event": "ONCRMDEALADD", "data": {"FIELDS": {"ID": 12.0}}}, "must be a positive integer, got float"),
        ({"event": "ONCRMDEALADD", "data": {"FIELDS": {"ID": [1]}}}, "must be a positive integer, got list"),
        ({"event": "ONCRMDEALADD", "data": {"FIELDS": {"ID": True}}}, "must be a positive integer, got bool"),
        ({"event": "ONCRMDEALADD", "data": {"FIELDS": {"ID": 10**30}}}, "must be a positive integer, got '1000"),
        ({"event": "ONCRMDEALADD", "data": {"FIELDS": {"ID": -5}}}, "must be a positive integer, got '-5'"),
        ({"event": "ONCRMDEALADD", "data": {"FIELDS": {"ID": "7\x00"}}}, "must be a positive integer"),
        ({"event": "ONCRMDEALADD", "data": {"FIELDS": []}}, "missing"),
        ({"event": "ONCRMDEALADD", "data": "x"}, "missing"),
        ({"document_id": {"0": "crm", "1": "CCrmDocumentDeal"}}, "three parts"),
        ({"document_id": "DEAL_1"}, "three parts"),
        ({"document_id": [1, 2, 3]}, "three parts"),
        ({"document_id": None}, "three parts"),
        ({"document_id": ["crm", "CCrmDocumentDeal", "DEAL_1", "x"]}, "three parts"),
        ({"document_id": ["crm", "CCrmDocumentDeal", "DEAL_01"]}, "must look like DEAL_123"),
        ({"document_id": ["crm", "CCrmDocumentDeal", {"a": 1}]}, "three parts"),
    ],
)
def test_weird_types_are_400(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("[", r"\[")):
        call_json(payload)


def test_document_id_as_an_object_with_keys_0_to_2_is_a_list() -> None:
    doc = {"2": "DEAL_9", "0": "crm", "1": "CCrmDocumentDeal"}
    assert call_json({"document_id": doc}).deal_id == "9"
    assert call_json({"document_id[0]": "crm", "document_id[1]": "CCrmDocumentDeal", "document_id[2]": "DEAL_8"}
                     ).deal_id == "8"


@pytest.mark.parametrize("auth", ["x", [TOKEN], {"application_token": [TOKEN]}, {"application_token": None}, 5])
def test_auth_that_is_not_an_object_with_a_string_token_is_403(auth: Any) -> None:
    with pytest.raises(Forbidden):
        call_json({"event": "ONCRMDEALADD", "data": {"FIELDS": {"ID": 1}}, "auth": auth}, key=None)


def test_duplicated_keys_later_wins() -> None:
    body = '{"event": "ONCRMDEALADD", "data": {"FIELDS": {"ID": 1}}, "data": {"FIELDS": {"ID": 2}}}'
    assert interpret(decode_body(body.encode(), JSON), "robot-key-123456", SOURCE).deal_id == "2"
    form = "document_id[2]=DEAL_1&document_id[0]=crm&document_id[1]=CCrmDocumentDeal&document_id[2]=DEAL_3"
    assert interpret(decode_body(form.encode(), FORM), "robot-key-123456", SOURCE).deal_id == "3"


def test_ignored_event_names_are_shown_short_and_escaped() -> None:
    name = "ONCRMDEALDELETE\nFAKE LOG LINE " + "X" * 5000
    got = interpret({"event": name, "auth": {"application_token": TOKEN}}, None, SOURCE)
    assert got.kind == "ignored" and "\n" not in got.note and len(got.note) < 100 and "\\n" in got.note
    plain = interpret({"event": "ONCRMLEADADD", "auth": {"application_token": TOKEN}}, None, SOURCE)
    assert plain.note == "event ONCRMLEADADD is not relayed"


def test_ingress_defaults() -> None:
    ingress = IngressConfig()
    assert (ingress.max_body_bytes, ingress.max_fields, ingress.max_depth) == (262144, 1000, 16)
    assert BodyLimits() == BodyLimits(ingress.max_fields, ingress.max_depth)


# --- through the relay's HTTP port ---------------------------------------------------------------

e2e = pytest.mark.e2e


@e2e
def test_cheap_checks_come_before_parsing(relay_env: RelayEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = parse_query

    def counting(query: str, *a: Any, **k: Any) -> Any:
        calls.append(query[:20])
        return real(query, *a, **k)

    monkeypatch.setattr("relay.intake.bitrix24.parse_query", counting)
    heavy = b"a[]=x&" * (64 * 1024 // 6)
    assert relay_env.post(heavy, path="/b24/nobody").status_code == 404
    assert relay_env.post(heavy, path="/b24/partner?key=wrong-key-0123456789").status_code == 403
    reply = relay_env.post(heavy, headers={"Content-Type": FORM})
    assert reply.status_code == 400 and "ingress.max_fields" in reply.json()["error"]
    assert calls == []
    fine = f"event=ONCRMDEALUPDATE&data[FIELDS][ID]=5&auth[application_token]={APP_TOKEN}"
    assert relay_env.post(fine, path=f"/b24/partner?key={ROBOT_KEY}").status_code == 200
    assert len(calls) == 1


@e2e
@pytest.mark.parametrize(
    ("body", "ctype", "status", "message"),
    [
        (deep_json(30_000).encode(), JSON, 400, "JSON nests deeper"),
        (b'{"event": "ONCRMDEALADD", "data": {"FIELDS": {"ID": 1' + b"0" * 5000 + b"}}}", JSON, 400, "JSON number"),
        (b'{"event": NaN}', JSON, 400, "NaN"),
        (b'{"event": "\xff"}', JSON, 400, "not UTF-8"),
        (b"event=\xff", FORM, 400, "not UTF-8"),
        (b"[1]", JSON, 400, "must be an object"),
        (b"<xml/>", "application/xml", 400, "unsupported Content-Type"),
        (b"a[]=x&" * 40000, FORM, 400, "ingress.max_fields"),
        (b"a" * 300_000, FORM, 413, "ingress.max_body_bytes"),
    ],
)
def test_malformed_bodies_get_a_json_4xx(relay_env: RelayEnv, body: bytes, ctype: str, status: int,
                                         message: str) -> None:
    reply = relay_env.post(body, headers={"Content-Type": ctype})
    assert reply.status_code == status, reply.text
    answer = reply.json()
    assert answer["ok"] is False and message in answer["error"]


@e2e
def test_multipart_bodies(relay_env: RelayEnv) -> None:
    deal_id = relay_env.new_deal()
    fields = {"document_id[0]": "crm", "document_id[1]": "CCrmDocumentDeal", "document_id[2]": f"DEAL_{deal_id}"}
    files = {k: (None, v) for k, v in fields.items()}
    reply = relay_env.post(None, path=f"/b24/partner?key={ROBOT_KEY}", files=files)
    assert reply.status_code == 200 and reply.json()["deal_id"] == str(deal_id)
    many = [("a[]", (None, "x"))] * 1500
    reply = relay_env.post(None, files=many)
    assert reply.status_code == 400 and "ingress.max_fields" in reply.json()["error"]
    reply = relay_env.post(b"--x\r\nnonsense", headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert reply.status_code == 400 and reply.json()["ok"] is False
    reply = relay_env.post(b"nonsense", headers={"Content-Type": "multipart/form-data"})
    assert reply.status_code == 400 and reply.json()["ok"] is False


@e2e
def test_limits_come_from_relay_yaml(tmp_path: Any) -> None:
    from tests.relayenv import start, stop

    env = start(tmp_path, extra="ingress: {max_fields: 50, max_depth: 4}\n")
    try:
        many = "&".join(f"f{i}=x" for i in range(51)) + f"&auth[application_token]={APP_TOKEN}"
        reply = env.post(many, headers={"Content-Type": FORM})
        assert reply.status_code == 400
        assert reply.json()["error"] == "too many fields: more than 50 (ingress.max_fields)"
        reply = env.post(deep_json(5), headers={"Content-Type": JSON})
        assert reply.status_code == 400 and "deeper than 4 levels" in reply.json()["error"]
        deal_id = env.new_deal()
        assert env.event(deal_id)[0] == 200  # a real event has ~10 fields nested 1 deep
    finally:
        stop(env)
