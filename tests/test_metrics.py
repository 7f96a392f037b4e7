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
    assert value(text, "b24relay_oldest_pending_seconds") == 0
    assert value(text, "b24relay_bitrix24_requests_total", portal="target", method="batch", answer="200") >= 1
    assert value(text, "b24relay_transfer_seconds_count", kind="deal") >= 1
    for secret in (relay_env.source.config.secret, relay_env.target.config.secret):
        assert secret not in text
