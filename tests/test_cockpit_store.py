"""The integrator's page's numbers, on SQLite and PostgreSQL: activity per source, the hourly chart,
open failures (a replayed one drops out), the stored mapping-check result."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relay.store import Store

HOUR = 3600.0
NOW = 1_800_000_000.0 + 1800  # half past an hour


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    yield s
    s.close()


def _finish(store: Store, source: str, deal: str, status: str, at: float, error: str | None = None) -> int:
    queued = store.enqueue_sync(source, deal, "ONCRMDEALUPDATE", now=at - 5)
    [job] = [j for j in store.claim("w", "sync", limit=10, now=at - 4) if j.id == queued.job_id]
    store.complete(job, "w", status=status, outcome="created" if status == "done" else "", target_deal_id="9"
                   if status == "done" else None, error=error, now=at)
    return queued.job_id


def test_activity_hourly_and_open_failures(store: Store) -> None:
    _finish(store, "a", "1", "done", NOW - 10)
    _finish(store, "a", "2", "done", NOW - HOUR)  # the hour before
    dead = _finish(store, "a", "3", "dead", NOW - 20, error="crm.deal.add: Required fields")
    _finish(store, "b", "4", "dead", NOW - 3 * 86400)  # outside the 24 h window
    store.enqueue_sync("a", "5", "ROBOT", now=NOW - 1)  # waiting

    act = store.activity(["a", "b", "c"], now=NOW)
    a = act["a"]
    assert (a.done, a.dead, a.pending) == (2, 1, 1) and a.error_rate == pytest.approx(1 / 3)
    assert a.last_call == NOW - 1 and a.last_success == NOW - 10
    assert (act["b"].done, act["b"].dead, act["b"].error_rate) == (0, 0, None)
    assert act["c"].last_call is None

    hours = store.hourly(3, now=NOW)
    assert [h[0] % HOUR for h in hours] == [0, 0, 0] and hours[-1][0] <= NOW < hours[-1][0] + HOUR
    assert [(d, x) for _h, d, x in hours] == [(0, 0), (1, 0), (1, 1)]

    failures, resolved = store.open_failures()
    assert [j.id for j in failures] == [dead, store.recent(status="dead")[1].id] and resolved == 0
    again = store.replay(dead, now=NOW)
    assert again.job_id in [j.id for j in store.claim("w", "sync", limit=10, now=NOW + 1)]
    failures, resolved = store.open_failures()
    assert dead not in [j.id for j in failures] and resolved == 1  # replayed: no longer an open failure


def test_the_newest_mapping_check_is_kept_per_source(store: Store) -> None:
    store.save_check("a", {"findings": [{"line": 3}], "checked_at": 1.0}, now=1.0)
    store.save_check("a", {"findings": [], "checked_at": 2.0}, now=2.0)
    store.save_check("b", {"findings": [], "error": "could not read"}, now=3.0)
    assert store.checks() == {"a": {"findings": [], "checked_at": 2.0},
                              "b": {"findings": [], "error": "could not read"}}
