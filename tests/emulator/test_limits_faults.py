"""Leaky-bucket rate limit and every injectable fault, seen through a real HTTP client."""

from __future__ import annotations

import time

import pytest
import requests


def test_burst_then_503_then_recovers(make_portal, rest):
    portal = make_portal(burst=5, rate=5.0)
    statuses = [rest(portal, "user.current").status_code for _ in range(5)]
    assert statuses == [200] * 5
    rejected = None
    for _ in range(5):
        reply = rest(portal, "user.current")
        if reply.status_code == 503:
            rejected = reply
            break
    assert rejected is not None, "bucket never overflowed"
    assert rejected.json()["error"] == "QUERY_LIMIT_EXCEEDED"
    assert rejected.json()["error_description"] == "Too many requests"
    assert {"start", "finish", "duration", "processing", "date_start", "date_finish",
            "operating_reset_at", "operating"} <= set(rejected.json()["time"])
    deadline = time.monotonic() + 2.0
    while rest(portal, "user.current").status_code != 200:
        assert time.monotonic() < deadline, "bucket never drained"
        time.sleep(0.1)
    assert portal.count_requests(status=503) >= 1


def test_rejected_request_is_not_executed(make_portal, rest):
    portal = make_portal(burst=1, rate=0.1)
    assert rest(portal, "crm.deal.add", {"fields": {"TITLE": "a"}}).status_code == 200
    assert rest(portal, "crm.deal.add", {"fields": {"TITLE": "b"}}).status_code == 503
    assert [d["TITLE"] for d in portal.deals()] == ["a"]


def test_wrong_secret_is_401_and_counts(make_portal):
    portal = make_portal(burst=3, rate=0.1)
    bad = portal.webhook_url.replace(portal.config.secret, "wrongsecret00000") + "user.current"
    reply = requests.post(bad, json={}, timeout=5)
    assert reply.status_code == 401
    assert reply.json()["error"] == "NO_AUTH_FOUND"
    assert reply.json()["error_description"] == "Wrong authorization data"
    wrong_user = portal.url + f"/rest/99/{portal.config.secret}/user.current"
    assert requests.post(wrong_user, json={}, timeout=5).status_code == 401
    assert portal.rate_level() > 1.5


def test_query_limit_fault(source, rest):
    source.inject("query_limit", method="crm.deal.add")
    reply = rest(source, "crm.deal.add", {"fields": {"TITLE": "x"}})
    assert reply.status_code == 503 and reply.json()["error"] == "QUERY_LIMIT_EXCEEDED"
    assert source.deals() == []
    assert rest(source, "crm.deal.add", {"fields": {"TITLE": "x"}}).status_code == 200


def test_operation_time_limit_fault(source, rest):
    source.inject("operation_time_limit", method="crm.deal.list", reset_in=5)
    before = time.time()
    reply = rest(source, "crm.deal.list")
    assert reply.status_code == 429
    body = reply.json()
    assert body["error"] == "OPERATION_TIME_LIMIT"
    assert body["error_description"] == "Method is blocked due to operation time limit."
    assert before + 4 <= body["time"]["operating_reset_at"] <= time.time() + 6
    assert rest(source, "user.current").status_code == 200  # other methods unaffected anyway


def test_server_error_fault_with_overrides(source, rest):
    source.inject("server_error", times=2)
    assert rest(source, "user.current").status_code == 500
    assert rest(source, "user.current").json()["error"] == "INTERNAL_SERVER_ERROR"
    source.inject("server_error", status=503, code="OVERLOAD_LIMIT")
    reply = rest(source, "user.current")
    assert reply.status_code == 503 and reply.json()["error"] == "OVERLOAD_LIMIT"
    assert rest(source, "user.current").status_code == 200


def test_timeout_fault_makes_client_time_out(source, rest):
    source.inject("timeout", method="user.current", delay=1.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        rest(source, "user.current", timeout=0.2)


def test_drop_closes_connection_without_executing(source, rest):
    source.inject("drop", method="crm.deal.add")
    with pytest.raises(requests.exceptions.ConnectionError):
        rest(source, "crm.deal.add", {"fields": {"TITLE": "dropped"}})
    assert source.deals() == []
    assert source.requests[-1].fault == "drop" and source.requests[-1].status is None


def test_lost_reply_executes_then_hangs_up(source, rest):
    source.inject("lost_reply", method="crm.deal.add")
    with pytest.raises(requests.exceptions.ConnectionError):
        rest(source, "crm.deal.add", {"fields": {"TITLE": "written"}})
    assert [d["TITLE"] for d in source.deals()] == ["written"]
    assert rest(source, "crm.deal.add", {"fields": {"TITLE": "second"}}).status_code == 200


def test_fault_naming_a_batch_command_matches_the_batch(source, rest):
    source.inject("drop", method="crm.deal.update")
    with pytest.raises(requests.exceptions.ConnectionError):
        rest(source, "batch", {"cmd": {"u": "crm.deal.update?id=1&fields[TITLE]=x"}})
    assert source.faults() == []


def test_faults_are_consumed_in_order_and_clearable(source, rest):
    source.inject("server_error")
    source.inject("query_limit")
    assert rest(source, "user.current").status_code == 500
    assert rest(source, "user.current").status_code == 503
    source.inject("server_error", times=-1)
    assert rest(source, "profile").status_code == 500
    source.clear_faults()
    assert rest(source, "profile").status_code == 200


def test_unknown_fault_kind_is_rejected(source):
    with pytest.raises(ValueError):
        source.inject("meteor_strike")


def test_parallel_writes_get_unique_ids(source, rest):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(lambda i: rest(source, "crm.deal.add", {"fields": {"TITLE": f"p{i}"}}),
                                range(64)))
    ids = [r.json()["result"] for r in replies]
    assert len(set(ids)) == 64 and len(source.deals()) == 64
    assert source.count_requests("crm.deal.add", status=200) == 64


def test_parallel_burst_admits_exactly_burst(make_portal, rest):
    from concurrent.futures import ThreadPoolExecutor

    portal = make_portal(burst=10, rate=0.01)
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: rest(portal, "profile").status_code, range(30)))
    assert statuses.count(200) == 10 and statuses.count(503) == 20


def test_operating_time_budget_blocks_only_that_method(make_portal, rest):
    portal = make_portal(enforce_rate=False, operating_limit=1e-9)
    assert rest(portal, "crm.deal.list").status_code == 200
    blocked = rest(portal, "crm.deal.list")
    assert blocked.status_code == 429 and blocked.json()["error"] == "OPERATION_TIME_LIMIT"
    assert blocked.json()["time"]["operating"] > 0
    assert rest(portal, "profile").status_code == 200
