"""End to end: Bitrix24-format calls over real HTTP -> relay -> emulated portals (acceptance of issue 2)."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.relayenv import APP_TOKEN, ROBOT_KEY, ROWS, RelayEnv

pytestmark = pytest.mark.e2e
PINNED = "&<pinned member_id and domain>"


def only_target_deal(env: RelayEnv) -> dict:
    deals = env.target.deals()
    assert len(deals) == 1, deals
    return deals[0]


def test_documented_event_relays_one_deal_with_rows_comment_and_notification(relay_env: RelayEnv) -> None:
    env = relay_env
    deal_id = env.new_deal()
    status, body = env.event(deal_id)
    assert status == 200 and '"job_id"' in body
    env.settle()
    deal = only_target_deal(env)
    assert deal["TITLE"] == f"Boiler ({env.source.config.domain})"
    assert (deal["STAGE_ID"], deal["CATEGORY_ID"], deal["ASSIGNED_BY_ID"]) == ("C3:NEW", "3", "17")
    assert deal["OPPORTUNITY"] == "1500.00" and deal["CURRENCY_ID"] == "RUB"
    assert deal["UF_CRM_DELIVERY"] == "112" and deal["UF_CRM_PARTNER_COMPANY"] == "12"
    assert deal["UF_CRM_SOURCE_DEAL"] == f"{env.source.config.member_id}:{deal_id}"
    rows = env.target.rows(int(deal["ID"]))
    assert [(r["PRODUCT_ID"], r["PRODUCT_NAME"], r["QUANTITY"]) for r in rows] == [
        (301, "Boiler X200", 1), (0, "Installation", 2)]
    [comment] = env.source.comments(deal_id)
    target_link = f"[url=https://127.0.0.1/crm/deal/details/{deal['ID']}/]#{deal['ID']}[/url]"  # BB-code link
    assert comment["COMMENT"].startswith(f"[b24relay] Сделка передана в ESB: создана сделка {target_link}. [ref ")
    [note] = env.source.notifications()
    assert str(note["USER_ID"]) == "1" and f"(#{deal_id}) передана в ESB" in note["MESSAGE"]
    assert target_link in note["MESSAGE"]


def test_a_new_deal_costs_four_requests_and_an_update_three(relay_env: RelayEnv) -> None:
    env = relay_env
    deal_id = env.new_deal()
    env.source.reset_log()
    env.target.reset_log()
    env.event(deal_id)
    env.settle()
    assert env.source.count_requests() == 2  # one batch read, one batch comment + notification
    # a look-up by the stamp (the local database is not the only truth), then one batch:
    # crm.deal.add + crm.deal.productrows.set
    assert [r.method for r in env.target.requests] == ["batch", "batch"]
    assert env.target.requests[0].inner == ("crm.deal.list",)
    env.source.update_deal(deal_id, {"TITLE": "Boiler 2"})
    env.target.reset_log()
    env.event(deal_id)
    env.settle()
    assert env.target.count_requests() == 1  # a linked deal is written without a look-up


def test_repeated_events_give_one_deal_updates_follow_and_unchanged_costs_no_write(relay_env: RelayEnv) -> None:
    env = relay_env
    deal_id = env.new_deal()
    stop = threading.Event()
    workers = env.relay.start_workers(2, stop)
    try:
        for i in range(10):  # some arrive while the deal's job is running
            assert env.event(deal_id)[0] == 200
            time.sleep(0.01 * (i % 3))
        env.settle()
    finally:
        stop.set()
        env.relay.wake.set()
        for t in workers:
            t.join(5)
    first = only_target_deal(env)
    env.source.update_deal(deal_id, {"TITLE": "Boiler v2", "STAGE_ID": "C1:EXECUTING"})
    env.source.set_rows(deal_id, [dict(ROWS[0], QUANTITY=3)])
    env.event(deal_id)
    env.settle()
    updated = only_target_deal(env)
    assert updated["ID"] == first["ID"] and updated["TITLE"].startswith("Boiler v2")
    assert [(r["PRODUCT_ID"], r["QUANTITY"]) for r in env.target.rows(int(updated["ID"]))] == [(301, 3)]
    assert updated["OPPORTUNITY"] == env.source.deal(deal_id)["OPPORTUNITY"] == "3600.00"
    assert updated["STAGE_ID"] == "C3:NEW"  # create_only: the ESB team owns the stage after creation
    env.target.reset_log()
    env.event(deal_id)
    env.settle()
    assert env.target.count_requests() == 0
    assert env.store.jobs(kind="sync", limit=1)[0].outcome == "unchanged"


def test_robot_call_with_key_relays_and_without_is_refused(relay_env: RelayEnv) -> None:
    env = relay_env
    deal_id = env.new_deal()
    status, _ = env.source.send_robot(env.handler, deal_id)
    assert status == 403 and env.store.counts() == {}
    status, _ = env.source.send_robot(f"{env.handler}?key=wrong-key-0000000", deal_id)
    assert status == 403 and env.store.counts() == {}
    status, body = env.source.send_robot(f"{env.handler}?key={ROBOT_KEY}", deal_id)
    assert status == 200, body
    env.settle()
    assert only_target_deal(env)["UF_CRM_SOURCE_DEAL"].endswith(f":{deal_id}")


@pytest.mark.parametrize(
    ("path", "body", "ctype", "status", "says"),
    [
        ("/b24/partner", "event=ONCRMDEALUPDATE&data[FIELDS][ID]=5&auth[application_token]=nope-nope-nope",
         "application/x-www-form-urlencoded", 403, "application_token"),
        ("/b24/nosuch", f"event=ONCRMDEALUPDATE&data[FIELDS][ID]=5&auth[application_token]={APP_TOKEN}",
         "application/x-www-form-urlencoded", 404, "unknown source"),
        ("/b24/partner", "{broken json", "application/json", 400, "not valid JSON"),
        ("/b24/partner", f"event=ONCRMDEALUPDATE&auth[application_token]={APP_TOKEN}{PINNED}",
         "application/x-www-form-urlencoded", 400, "data[FIELDS][ID]"),
        ("/b24/partner", "x=" + "a" * 300_000, "application/x-www-form-urlencoded", 413, "larger than"),
    ],
)
def test_bad_calls_get_clear_4xx_and_store_nothing(relay_env: RelayEnv, path: str, body: str, ctype: str,
                                                   status: int, says: str) -> None:
    cfg = relay_env.source.config
    body = body.replace(PINNED, f"&auth[member_id]={cfg.member_id}&auth[domain]={cfg.domain}")
    resp = relay_env.post(body.encode(), path=path, headers={"Content-Type": ctype})
    assert resp.status_code == status
    assert says in resp.json()["error"]
    assert relay_env.store.counts() == {}


def test_unhandled_event_is_acknowledged_and_ignored(relay_env: RelayEnv) -> None:
    status, body = relay_env.event(5, event="ONCRMDEALDELETE")
    assert status == 200 and "ignored" in body
    assert relay_env.store.counts() == {}


def test_query_limit_twice_then_success_relays_once(relay_env: RelayEnv) -> None:
    env = relay_env
    env.target.inject("query_limit", method="crm.deal.add", times=2)
    deal_id = env.new_deal()
    env.event(deal_id)
    env.settle()
    only_target_deal(env)
    # look-up, 503, 503 (the in-call retries are used up; refused, so nothing was created),
    # then the next attempt: look-up, write
    assert env.target.count_requests() == 5


@pytest.mark.parametrize("failure_comment", [False, True])
def test_validation_error_kills_the_job_and_alerts_the_integrator(tmp_path, failure_comment: bool) -> None:
    from tests.relayenv import ROOT, start, stop

    mapping = (ROOT / "config/mappings/partner.yaml").read_text().replace('"C3:NEW"', '"C3:NO_SUCH_STAGE"')
    extra = f"notify: {{integrator_user_id: 17, failure_comment: {str(failure_comment).lower()}}}"
    env = start(tmp_path, mapping=mapping, extra=extra)
    try:
        deal_ids = [env.new_deal(), env.new_deal()]
        for deal_id in deal_ids:
            env.event(deal_id)
        env.settle()
        assert env.target.deals() == []
        jobs = env.store.jobs(kind="sync")
        assert [j.status for j in jobs] == ["dead", "dead"] and "C3:NO_SUCH_STAGE" in (jobs[0].last_error or "")
        assert [j.attempts for j in jobs] == [1, 1]  # a validation error is not retried
        assert env.source.notifications() == []  # never the partner's manager
        [alert] = env.target.notifications()  # the integrator, once for both (alert_quiet)
        assert str(alert["USER_ID"]) == "17" and "C3:NO_SUCH_STAGE" in alert["MESSAGE"]
        comments = [c for d in deal_ids for c in env.source.comments(d)]
        if failure_comment:
            assert len(comments) == 2 and all("C3:NO_SUCH_STAGE" in c["COMMENT"] for c in comments)
        else:
            assert comments == []
    finally:
        stop(env)


def test_lost_reply_of_a_create_never_duplicates(relay_env: RelayEnv) -> None:
    env = relay_env
    env.target.inject("lost_reply", method="crm.deal.add", times=1)
    deal_id = env.new_deal()
    env.event(deal_id)
    env.settle()
    deal = only_target_deal(env)
    assert len(env.target.rows(int(deal["ID"]))) == 2
    [job] = env.store.jobs(kind="sync")
    assert job.status == "done" and job.attempts == 2
    link = env.store.link("partner", str(deal_id))
    assert link is not None and link.target_deal_id == deal["ID"]
    assert len(env.source.comments(deal_id)) == 1


def test_server_error_on_create_then_retry_creates_once(relay_env: RelayEnv) -> None:
    env = relay_env
    env.target.inject("server_error", method="crm.deal.add", times=1)
    deal_id = env.new_deal()
    env.event(deal_id)
    env.settle()
    only_target_deal(env)


def test_deal_outside_trigger_stage_is_skipped(relay_env: RelayEnv) -> None:
    env = relay_env
    deal_id = env.new_deal(STAGE_ID="C1:NEW")
    env.event(deal_id)
    env.settle()
    assert env.target.deals() == []
    [job] = env.store.jobs(kind="sync")
    assert job.status == "skipped" and "C1:NEW" in (job.last_error or "")
    assert env.source.comments(deal_id) == []


def test_failing_notification_is_retried_alone(relay_env: RelayEnv) -> None:
    env = relay_env
    env.source.inject("server_error", method="crm.timeline.comment.add", times=2)
    deal_id = env.new_deal()
    env.event(deal_id)
    env.settle()
    only_target_deal(env)
    assert env.target.count_requests() == 2  # the look-up and the write, never repeated
    assert len(env.source.comments(deal_id)) == 1
    [note] = env.store.jobs(kind="notify")
    assert note.status == "done" and note.attempts == 3


def test_health_and_status_hold_no_secrets(relay_env: RelayEnv) -> None:
    health = requests.get(relay_env.url + "/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    status = requests.get(relay_env.url + "/status", timeout=5)
    assert status.status_code == 200 and status.json()["sources"][0]["id"] == "partner"
    assert "sekret" not in status.text.lower() and "sekret" not in health.text.lower()


def test_source_portal_unreachable_uses_up_no_attempts_and_the_deal_arrives_after(relay_env: RelayEnv) -> None:
    env = relay_env
    deal_id = env.new_deal()
    env.event(deal_id)
    env.source.inject("drop", times=-1)
    worker = env.relay.worker("outage")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (env.store.jobs(kind="sync")[0].attempts < 12):
        worker.run_once()
        time.sleep(0.05)
    [job] = env.store.jobs(kind="sync")
    assert job.attempts >= 12 > env.relay.config.file.worker.max_attempts  # network errors use up nothing
    assert job.status == "pending" and "sekret" not in (job.last_error or "").lower()
    assert env.target.deals() == [] and env.source.comments(deal_id) == []
    env.source.clear_faults()
    env.settle()
    only_target_deal(env)
