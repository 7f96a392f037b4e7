"""A source gone quiet alerts the integrator once per silence: the rule, the store, end to end."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from relay.config import load_config
from relay.store import Store
from relay.sync import notices
from relay.worker import Worker
from tests.relayenv import SOURCE_SECRET, RelayEnv, env_for, start, stop

H = 3600.0


@pytest.mark.parametrize(("now", "last", "recent", "alerted", "quiet"), [
    (10 * H, None, 0, None, False),  # never called: nothing to miss
    (10 * H, 9.5 * H, 5, None, False),  # silent for half an hour only
    (10 * H, 9 * H, 5, None, True),  # silent for quiet_after exactly
    (10 * H, 2 * H, 5, None, True),  # long silent (the worker was down): still told, once
    (10 * H, 8 * H, 1, None, False),  # one call in the hour before its last: it does not usually call
    (10 * H, 8 * H, notices.QUIET_MIN_CALLS, None, True),
    (10 * H, 8 * H, 5, 8 * H, False),  # this silence was alerted already
    (10 * H, 8 * H, 5, 7 * H, True),  # an older silence was: calls resumed, then stopped again
])
def test_the_quiet_rule(now: float, last: float | None, recent: int, alerted: float | None, quiet: bool) -> None:
    assert notices.is_quiet(now=now, last_call=last, recent_calls=recent, quiet_after=H, alerted_for=alerted) is quiet


@pytest.mark.parametrize(("language", "start"), [
    ("ru", "[b24relay] От источника p нет вызовов уже 2 ч 5 мин (последний: 2023-11-14 22:13 UTC)"),
    ("uk", "[b24relay] Від джерела p немає викликів уже 2 год 5 хв (останній: 2023-11-14 22:13 UTC)"),
    ("en", "[b24relay] Source p has sent no calls for 2 h 5 min (the last one at 2023-11-14 22:13 UTC)"),
])
def test_the_quiet_alert_text(language: str, start: str) -> None:
    payload = notices.quiet_alert(user_id="17", source_id="p", last_call=1_700_000_000, now=1_700_007_500,
                                  language=language, domain="p.bitrix24.ua", cockpit_url="https://r.example/cockpit/")
    assert payload["portal"] == notices.TARGET and payload["alert"]["user_id"] == "17"
    text = payload["alert"]["message"]
    assert text.startswith(start) and "(p.bitrix24.ua)" in text and "`relay jobs --source p`" in text
    assert text.endswith("[url=https://r.example/cockpit/]" + ("b24relay cockpit" if language == "en"
                                                              else "Панель b24relay") + "[/url]")
    assert [part for part, _ in notices.commands(payload, "").values()] == ["alert"]


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    yield s
    s.close()


def test_calls_count_the_sources_own_calls_only(store: Store) -> None:
    assert store.calls("p", H) == (None, 0)
    store.enqueue_sync("p", "1", "ONCRMDEALUPDATE", now=1000.0)
    store.enqueue_sync("p", "1", "ONCRMDEALUPDATE", now=1001.0)  # merged: the job counts 2 calls
    store.enqueue_sync("p", "2", "robot", event_token="tok", now=5000.0)
    store.enqueue_many("p", ["3", "4"], "SWEEP", now=9000.0)  # the relay's own: not calls
    store.enqueue_sync("q", "9", "ONCRMDEALUPDATE", now=9500.0)  # another source
    assert store.calls("p", H) == (5000.0, 1)  # 1000 is more than an hour before 5000
    assert store.calls("p", 4000.0) == (5000.0, 3)


def test_one_alert_per_silence_even_with_several_workers(store: Store) -> None:
    alert = notices.quiet_alert(user_id="17", source_id="p", last_call=5000.0, now=9000.0)
    assert store.quiet_alerted("p") is None
    assert store.claim_quiet("p", 5000.0, alert, now=9000.0) is True
    assert store.claim_quiet("p", 5000.0, alert, now=9100.0) is False  # a sibling, or after a restart
    assert store.claim_quiet("p", 4000.0, alert, now=9100.0) is False  # never backwards
    assert store.quiet_alerted("p") == 5000.0
    [job] = store.jobs(kind="notify")
    assert (job.source_id, job.trigger, job.status, job.deal_id) == ("p", "QUIET", "pending", "")
    assert job.payload == json.loads(json.dumps(alert)) and store.last_alert("p") is None  # dead-job alerts apart
    assert store.claim_quiet("p", 6000.0, None, now=9200.0) is True  # a new silence; no user: recorded only
    assert store.quiet_alerted("p") == 6000.0 and len(store.jobs(kind="notify")) == 1


# --- end to end: calls over HTTP into the relay, alerts on the emulated target portal -------------


def quiet_worker(env: RelayEnv, tmp_path: Path, quiet_after: float) -> Worker:
    """A worker whose relay.yaml gives the source ``quiet_after`` (and a public URL for the cockpit link)."""
    path = tmp_path / "relay.yaml"
    text = path.read_text()
    if "quiet_after" not in text:
        text = text.replace("    mapping: mappings/partner.yaml\n",
                            f"    mapping: mappings/partner.yaml\n    quiet_after: {quiet_after}\n", 1)
        path.write_text(text + "public_url: https://relay.example.com\n")
    return Worker(load_config(path, env_for(env.source, env.target)), env.store, env.relay.pipeline, name="quiet")


def calls(env: RelayEnv, count: int) -> float:
    """``count`` calls from the source (events for new deals), relayed; returns when the last came."""
    for _ in range(count):
        status, _ = env.event(env.new_deal())
        assert status == 200
    last = time.time()
    env.settle()
    return last


def alerts(env: RelayEnv) -> list[dict]:
    return [n for n in env.target.notifications() if str(n["USER_ID"]) == "17"]


@pytest.fixture
def quiet_env(tmp_path: Path, database_url: str) -> Iterator[RelayEnv]:
    env = start(tmp_path, extra="notify: {integrator_user_id: 17}", database_url=database_url)
    yield env
    stop(env)


def test_a_silent_source_alerts_once_and_again_only_after_calls_resume(
        quiet_env: RelayEnv, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env, q = quiet_env, 60.0
    worker = quiet_worker(env, tmp_path, q)
    first = calls(env, 1)
    assert worker.check_quiet(first + q + 1) == 0  # one call is no habit
    last = calls(env, 1)
    assert worker.check_quiet(last + q / 2) == 0  # not silent long enough
    with caplog.at_level(logging.WARNING, logger="relay.worker"):
        assert worker.check_quiet(last + q + 1) == 1
    [line] = [r.getMessage() for r in caplog.records if "has sent no calls" in r.getMessage()]
    assert line.startswith("source partner has sent no calls for 1 min") and "target user 17" in line
    assert SOURCE_SECRET not in line
    env.store.enqueue_many("partner", ["99001"], "SWEEP")  # the relay's own sweep is not a call
    for n in range(5):  # more rounds, a restarted worker and a sibling: no repeat storm
        other = quiet_worker(env, tmp_path, q) if n % 2 else worker
        assert other.check_quiet(last + q + 1 + 30 * n) == 0
        other.drain(timeout=10)
    [alert] = alerts(env)
    text = alert["MESSAGE"]
    assert text.startswith("[b24relay] От источника partner нет вызовов уже 1 мин")
    assert f"({env.source.config.domain})" in text and "[url=https://relay.example.com/cockpit/]" in text
    assert [j.trigger for j in env.store.jobs(kind="notify", source_id="partner") if j.trigger == "QUIET"] == ["QUIET"]

    again = calls(env, 2)  # calls resume ...
    assert worker.check_quiet(again + q / 2) == 0
    assert worker.check_quiet(again + q + 1) == 1  # ... and stop again: a new alert
    assert worker.check_quiet(again + 10 * q) == 0
    worker.drain(timeout=10)
    assert len(alerts(env)) == 2


def test_the_run_loop_checks_quiet_sources_on_its_own(quiet_env: RelayEnv, tmp_path: Path) -> None:
    env = quiet_env
    worker = quiet_worker(env, tmp_path, 1)
    calls(env, 2)
    stopping = threading.Event()
    loop = threading.Thread(target=worker.run, args=(stopping,), daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while not alerts(env) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # a few more checks (every quarter of quiet_after): still one alert
    finally:
        stopping.set()
        worker.wake.set()
        loop.join(timeout=10)
    assert len(alerts(env)) == 1


@pytest.mark.parametrize(("language", "start"), [
    ("ru", "[b24relay] От базы 1С main нет вызовов уже 2 ч 5 мин"),
    ("uk", "[b24relay] Від бази 1С main немає викликів уже 2 год 5 хв"),
    ("en", "[b24relay] 1C base main has sent no calls for 2 h 5 min"),
])
def test_the_quiet_alert_of_a_1c_base_points_at_its_exchange_module(language: str, start: str) -> None:
    text = notices.quiet_alert(user_id="17", source_id="main", last_call=1_700_000_000, now=1_700_007_500,
                               language=language, onec=True)["alert"]["message"]
    assert text.startswith(start) and "1C" in text.replace("1С", "1C") and "`relay jobs --source main`" in text
    assert "вебхук" not in text and "webhook" not in text


def test_a_silent_1c_base_alerts_once(tmp_path: Path, database_url: str) -> None:
    (tmp_path / "mappings").mkdir(parents=True, exist_ok=True)
    (tmp_path / "mappings/1c.yaml").write_text("clients:\n  fields: {TITLE: Наименование}\n", encoding="utf-8")
    extra = ("notify: {integrator_user_id: 17}\n"
             "onec:\n  - {id: main, token: onec-main-token-0123456789, mapping: mappings/1c.yaml, quiet_after: 60}\n")
    env = start(tmp_path, extra=extra, database_url=database_url)
    try:
        worker = Worker(load_config(env.config_path, env_for(env.source, env.target)), env.store, env.relay.pipeline,
                        name="quiet")
        for n in range(2):
            body = {"action": "update", "clientData": {"Код": f"00{n}", "Наименование": f"ТОВ {n}"}}
            answer = requests.post(f"{env.url}/api/webhook/1c/clients", json=body, timeout=10,
                                   headers={"Authorization": "Bearer onec-main-token-0123456789"})
            assert answer.status_code == 200, answer.text
        last = time.time()
        env.settle()
        assert worker.check_quiet(last + 30) == 0
        assert worker.check_quiet(last + 61) == 1
        assert worker.check_quiet(last + 200) == 0  # no repeat storm
        worker.drain(timeout=10)
        [alert] = alerts(env)
        assert alert["MESSAGE"].startswith("[b24relay] От базы 1С main нет вызовов уже 1 мин")
    finally:
        stop(env)
