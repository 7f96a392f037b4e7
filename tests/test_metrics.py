"""/metrics for Prometheus (issue 11, first part): calls by source, kind and answer; jobs by kind and
state; Bitrix24 requests by portal, method and answer; transfer latency; no secret in any label."""

from __future__ import annotations

import requests

from tests.relayenv import RelayEnv


def value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` in an exposition text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
        if line.startswith(name + " ") and not labels:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_calls_jobs_and_bitrix24_requests(relay_env: RelayEnv) -> None:
    before = requests.get(f"{relay_env.url}/metrics", timeout=5).text
    deal = relay_env.new_deal()
    assert relay_env.event(deal)[0] == 200
    assert relay_env.post({"event": "ONCRMDEALUPDATE"}).status_code == 403
    relay_env.settle()
    text = requests.get(f"{relay_env.url}/metrics", timeout=5).text
    assert value(text, "b24relay_calls_total", source="partner", kind="b24", answer="200") == value(
        before, "b24relay_calls_total", source="partner", kind="b24", answer="200") + 1
    assert value(text, "b24relay_calls_total", source="partner", kind="b24", answer="403") >= 1
    assert value(text, "b24relay_jobs", kind="sync", state="done") == 1
    assert value(text, "b24relay_jobs", kind="notify", state="done") == 1
    assert value(text, "b24relay_oldest_pending_seconds") == 0 and "\nb24relay_oldest_pending_seconds " in text
    assert value(text, "b24relay_bitrix24_requests_total", portal="target", method="batch", answer="200") >= 1
    assert value(text, "b24relay_transfer_seconds_count", kind="deal") >= 1
    for secret in (relay_env.source.config.secret, relay_env.target.config.secret):
        assert secret not in text


def test_metrics_match_a_scripted_run_of_20_deals_with_3_failing(relay_env: RelayEnv) -> None:
    env = relay_env
    before = requests.get(env.url + "/metrics", timeout=5).text
    deals = [env.new_deal(TITLE=f"Deal {n}") for n in range(20)]
    env.target.inject("command_error", method="crm.deal.add", times=3, code="", status=400,
                      description="Required fields are not filled: Responsible person")
    env.target.inject("query_limit", times=2)  # two refused requests, retried in-call
    for deal in deals:
        assert env.event(deal)[0] == 200
    env.settle()
    after = requests.get(env.url + "/metrics", timeout=5).text

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("b24relay_calls_total", source="partner", kind="b24", answer="200") == 20
    assert value(after, "b24relay_jobs", kind="sync", state="done") == 17
    assert value(after, "b24relay_jobs", kind="sync", state="dead") == 3
    assert value(after, "b24relay_jobs", kind="sync", state="pending") == 0
    assert value(after, "b24relay_oldest_pending_seconds") == 0 and "\nb24relay_oldest_pending_seconds " in after
    assert delta("b24relay_bitrix24_requests_total", portal="target", method="batch", answer="503") == 2
    assert delta("b24relay_transfer_seconds_count", kind="deal") == 17
    assert len(env.target.deals()) == 17
    # the page's numbers come from the same places
    activity = env.store.activity(["partner"])["partner"]
    assert (activity.done, activity.dead) == (17, 3)
