"""The REST client's retry edges, faked at the HTTP seam with `responses`."""

import pytest
import requests
import responses
from responses.registries import OrderedRegistry

from relay import errors
from relay.portal.client import PortalClient
from relay.portal.pacer import Pacer
from relay.portal.protocol import Command

SECRET = "s3cr3tWebhookKey"
BASE = f"https://esb.bitrix24.test/rest/1/{SECRET}/"
QLE = {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float, slept: list[float]) -> None:
        slept.append(seconds)
        self.now += seconds


def client(slept: list[float], clock: FakeTime | None = None) -> PortalClient:
    clock = clock or FakeTime()
    pacer = Pacer(rate=1000, burst=1000, clock=clock, wall=clock, sleep=lambda s: clock.sleep(s, slept))
    return PortalClient("target", BASE, pacer, sleep=lambda s: clock.sleep(s, slept), attempts=4)


@responses.activate(registry=OrderedRegistry)
def test_query_limit_twice_then_success_even_for_writes() -> None:
    for _ in range(2):
        responses.post(BASE + "crm.deal.add.json", json=QLE, status=503)
    responses.post(BASE + "crm.deal.add.json", json={"result": 42})
    slept: list[float] = []
    c = client(slept)
    assert c.call("crm.deal.add", {"fields": {"TITLE": "x"}}, write=True) == 42
    assert len(responses.calls) == 3 and c.requests_sent == 3
    assert len([s for s in slept if s > 0]) >= 2  # backed off between attempts, without real sleeping
    assert responses.calls[0].request.headers["Content-Type"] == "application/json"


@responses.activate
def test_lost_reply_on_write_is_not_resent_and_names_no_secret() -> None:
    responses.post(BASE + "batch.json", body=requests.ConnectionError(f"reset by peer {BASE}"))
    c = client([])
    with pytest.raises(errors.ReplyLost) as info:
        c.batch({"a": Command("crm.deal.add", {"fields": {}})}, write=True)
    assert len(responses.calls) == 1
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


@responses.activate(registry=OrderedRegistry)
def test_reads_are_retried_on_network_and_server_errors() -> None:
    responses.post(BASE + "crm.deal.get.json", body=requests.ConnectionError("boom"))
    responses.post(BASE + "crm.deal.get.json", json={"error": "INTERNAL_SERVER_ERROR"}, status=500)
    responses.post(BASE + "crm.deal.get.json", json={"result": {"ID": "1"}})
    assert client([]).call("crm.deal.get", {"id": 1}) == {"ID": "1"}
    assert len(responses.calls) == 3


@responses.activate
def test_server_error_on_write_is_not_resent() -> None:
    responses.post(BASE + "crm.deal.add.json", json={"error": "INTERNAL_SERVER_ERROR"}, status=500)
    with pytest.raises(errors.ServerError):
        client([]).call("crm.deal.add", {}, write=True)
    assert len(responses.calls) == 1


@responses.activate
def test_permanent_errors_are_not_retried() -> None:
    responses.post(BASE + "crm.deal.get.json", json={"error": "", "error_description": "Not found"}, status=400)
    with pytest.raises(errors.NotFound):
        client([]).call("crm.deal.get", {"id": 9})
    assert len(responses.calls) == 1


@responses.activate(registry=OrderedRegistry)
def test_operation_time_limit_holds_the_method() -> None:
    clock = FakeTime()
    reset = clock.now + 5
    responses.post(BASE + "crm.deal.list.json", status=429, json={
        "error": "OPERATION_TIME_LIMIT", "error_description": "blocked", "time": {"operating_reset_at": reset}})
    responses.post(BASE + "crm.deal.list.json", json={"result": []})
    slept: list[float] = []
    assert client(slept, clock).call("crm.deal.list", {}) == []
    assert max(slept) > 3  # waited for operating_reset_at before the second attempt


@responses.activate(registry=OrderedRegistry)
def test_portal_rename_redirect_reposts() -> None:
    responses.post(BASE + "crm.deal.get.json", status=302,
                   headers={"Location": f"https://new.bitrix24.test/rest/1/{SECRET}/crm.deal.get.json"})
    responses.post(f"https://new.bitrix24.test/rest/1/{SECRET}/crm.deal.get.json", json={"result": {"ID": "5"}})
    assert client([]).call("crm.deal.get", {"id": 5}) == {"ID": "5"}
    assert responses.calls[1].request.method == "POST"
