"""The benchmark BASELINE (bench/baseline.py): the naive handler.php plan against emulated portals."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bench.baseline import create_baseline_app, run_baseline
from relay.emulator import EmulatedPortal, PortalConfig, default_source_config, default_target_config

DEAL = {"TITLE": "Boiler", "CATEGORY_ID": "1", "STAGE_ID": "C1:NEW", "OPPORTUNITY": "1500.00",
        "CURRENCY_ID": "RUB", "ASSIGNED_BY_ID": "5"}
ROWS = [
    {"PRODUCT_ID": 15, "PRODUCT_NAME": "Router X100", "PRICE": 1200.0, "QUANTITY": 1},
    {"PRODUCT_ID": 0, "PRODUCT_NAME": "Installation", "PRICE": 150.0, "QUANTITY": 2},
]
SEQUENCE = ["source:crm.deal.get", "target:crm.deal.add", "source:crm.deal.productrows.get",
            "target:crm.deal.productrows.set", "source:im.notify.system.add", "source:crm.timeline.comment.add"]


@contextmanager
def portals(source_cfg: PortalConfig) -> Iterator[tuple[EmulatedPortal, EmulatedPortal]]:
    target_cfg = default_target_config(rate=1000, burst=1000, secret="tgt-sekret-77")
    with EmulatedPortal(source_cfg) as source, EmulatedPortal(target_cfg) as target:
        yield source, target


def seed(source: EmulatedPortal, n: int) -> list[int]:
    return [source.add_deal({**DEAL, "TITLE": f"Boiler {i}"}, rows=[dict(r) for r in ROWS]) for i in range(n)]


def target_deals_by_source(target: EmulatedPortal, member_id: str) -> dict[int, dict[str, Any]]:
    out = {}
    for deal in target.deals():
        member, _, source_id = str(deal.get("UF_CRM_SOURCE_DEAL") or "").partition(":")
        assert member == member_id
        out[int(source_id)] = deal
    return out


def assert_nothing_left(result: dict[str, Any]) -> None:
    port = int(result["handler_url"].rsplit(":", 1)[1].split("/", 1)[0])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    alive = [t.name for t in threading.enumerate()
             if t.name.startswith("baseline") or "process_request_thread" in t.name]
    assert alive == []


def test_baseline_relays_each_deal_with_six_sequential_calls() -> None:
    with portals(default_source_config(rate=1000, burst=1000, secret="src-sekret-77")) as (source, target):
        ids = seed(source, 3)
        result = run_baseline(source, target, ids, concurrency=1, timeout=20)

        assert result["events"] == 3 and result["ok"] == 3 and result["failed"] == 0
        assert result["failures"] == {} and result["answers"] == {"200": 3}
        # exactly 6 requests per deal: 4 on the source, 2 on the target
        assert (result["source_requests"], result["target_requests"]) == (12, 6)
        # in the plan's order (one sender: the events do not interleave)
        log = sorted([(r.time, f"source:{r.method}") for r in source.requests]
                     + [(r.time, f"target:{r.method}") for r in target.requests])
        assert [name for _, name in log] == SEQUENCE * 3

        copied = target_deals_by_source(target, source.config.member_id)
        assert sorted(copied) == sorted(ids)
        for source_id, deal in copied.items():
            assert deal["TITLE"] == source.deal(source_id)["TITLE"]
            assert (deal["CATEGORY_ID"], deal["STAGE_ID"], deal["ASSIGNED_BY_ID"]) in {
                (3, "C3:NEW", 17), ("3", "C3:NEW", "17")}
            rows = target.rows(int(deal["ID"]))
            assert [(r["PRODUCT_ID"], r["PRODUCT_NAME"], r["PRICE"], r["QUANTITY"]) for r in rows] == [
                (0, "Router X100", 1200.0, 1.0), (0, "Installation", 150.0, 2.0)]
            assert len(source.comments(source_id)) == 1
        notes = source.notifications()
        assert len(notes) == 3 and {n["USER_ID"] for n in notes} == {5}
        assert len(source.comments()) == 3
        assert_nothing_left(result)


def test_tight_source_limit_loses_or_half_does_deals_without_retry() -> None:
    cfg = default_source_config(rate=0.5, burst=5, secret="src-sekret-77")
    with portals(cfg) as (source, target):
        ids = seed(source, 5)
        result = run_baseline(source, target, ids, concurrency=4, timeout=20)

        assert result["ok"] + result["failed"] == 5
        assert result["failed"] > 0
        assert result["failures"] == {"QUERY_LIMIT_EXCEEDED": result["failed"]}
        assert result["answers"].get("500") == result["failed"]
        # no retries: each failed event made exactly one rejected request, then stopped
        assert source.count_requests(status=503) == result["failed"]
        # the failed deals are missing on the target or half-done (no rows / no comment)
        copied = target_deals_by_source(target, source.config.member_id)
        complete = [d for d in ids if d in copied and target.rows(int(copied[d]["ID"]))
                    and source.comments(d)]
        assert len(complete) == result["ok"] < 5
        assert len(source.comments()) == result["ok"]
        assert_nothing_left(result)


def test_wrong_application_token_is_rejected_without_calls() -> None:
    with portals(default_source_config(rate=1000, burst=1000, secret="src-sekret-77")) as (source, target):
        deal_id = seed(source, 1)[0]
        app = create_baseline_app(source.webhook_url, target.webhook_url, "expected-token")
        body = f"event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D={deal_id}&auth%5Bapplication_token%5D=wrong"
        reply = app.test_client().post("/handler", data=body,
                                       content_type="application/x-www-form-urlencoded")
        assert reply.status_code == 401
        assert app.config["BASELINE_STATS"].snapshot()["rejected"] == 1
        assert source.count_requests() == 0 and target.count_requests() == 0


def test_failed_call_answers_500_and_stops_the_event() -> None:
    with portals(default_source_config(rate=1000, burst=1000, secret="src-sekret-77")) as (source, target):
        deal_id = seed(source, 1)[0]
        source.inject("drop", method="crm.deal.productrows.get")
        result = run_baseline(source, target, [deal_id], timeout=10)
        assert result["failed"] == 1 and result["failures"] == {"NETWORK_ERROR": 1}
        assert result["failed_at"] == {"crm.deal.productrows.get": 1}
        # half-done: the target deal exists without rows, nothing was notified or commented
        (copied,) = target.deals()
        assert target.rows(int(copied["ID"])) == []
        assert source.notifications() == [] and source.comments() == []
        assert (result["source_requests"], result["target_requests"]) == (2, 1)
