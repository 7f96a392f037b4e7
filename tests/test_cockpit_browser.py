"""The integrator's page in a real browser (headless Chromium): log in, see a dead job and its reason,
press replay, see it done; no page or response shows a secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import relayenv
from tests.browser import chromium

ADMIN = "cockpit-admin-token-0123456789"
SECRETS = (relayenv.SOURCE_SECRET, relayenv.TARGET_SECRET, relayenv.APP_TOKEN, relayenv.ROBOT_KEY, ADMIN)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[relayenv.RelayEnv]:
    e = relayenv.start(tmp_path, admin_token=ADMIN)
    yield e
    relayenv.stop(e)


def _no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret shows in {where}"


def test_login_see_dead_job_replay_it_and_see_it_done(env: relayenv.RelayEnv, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    ok = env.new_deal(TITLE="Fine deal")
    bad = env.new_deal(TITLE="Broken deal")
    env.event(ok)
    env.relay.worker("w").run_once()
    env.target.inject("command_error", method="crm.deal.add", times=1, code="", status=400,
                      description="Required fields are not filled: Responsible person")
    env.event(bad)
    env.settle()
    [dead] = [j for j in env.store.jobs(kind="sync") if j.status == "dead"]
    assert dead.deal_id == str(bad)

    seen: list[tuple[str, str]] = []
    with chromium() as browser:
        b = browser
        b.get(env.url + "/cockpit/")
        assert "/cockpit/login" in b.current_url
        b.find_element(By.ID, "token").send_keys("wrong-token")
        b.find_element(By.ID, "login").click()
        WebDriverWait(b, 10).until(lambda d: "Wrong token" in d.page_source)
        seen.append(("login page", b.page_source))
        b.find_element(By.ID, "token").send_keys(ADMIN)
        b.find_element(By.ID, "login").click()
        WebDriverWait(b, 10).until(lambda d: d.current_url.rstrip("/").endswith("/cockpit"))
        page = b.page_source
        seen.append(("main page", page))
        row = b.find_element(By.CSS_SELECTOR, f'#dead tr[data-job="{dead.id}"]')
        assert "Required fields are not filled: Responsible person" in row.text
        assert b.find_element(By.CSS_SELECTOR, '#sources tr[data-source="partner"]').text
        link = b.find_element(By.CSS_SELECTOR, '#done td a[href*="/crm/deal/details/"]')
        assert "partner.bitrix24.test" in (link.get_attribute("href") or "")
        b.save_screenshot(str(tmp_path / "cockpit.png"))

        row.find_element(By.CSS_SELECTOR, "button.replay").click()
        WebDriverWait(b, 10).until(lambda d: f"Job {dead.id} replayed as job" in d.page_source)
        seen.append(("after replay", b.page_source))
        env.settle()
        b.get(env.url + "/cockpit/")
        page = b.page_source
        seen.append(("main page again", page))
        assert 'id="no-dead"' in page
        done = b.find_elements(By.CSS_SELECTOR, "#done tr[data-job]")
        assert any(f"/crm/deal/details/{bad}/" in (r.get_attribute("innerHTML") or "") for r in done)
        assert len(env.target.deals()) == 2

        b.get(env.url + "/cockpit/checks/partner")
        assert "Mapping check of partner" in b.page_source
        seen.append(("check page", b.page_source))
        b.find_element(By.CSS_SELECTOR, "header button").click()  # log out
        WebDriverWait(b, 10).until(lambda d: "/cockpit/login" in d.current_url)
        b.get(env.url + "/cockpit/")
        assert "/cockpit/login" in b.current_url
    for where, text in seen:
        _no_secret(text, where)


def test_forms_need_the_session_token_and_the_page_needs_the_admin_token(env: relayenv.RelayEnv) -> None:
    s = requests.Session()
    responses = [s.get(env.url + "/cockpit/", allow_redirects=False, timeout=5)]
    assert responses[0].status_code == 302 and "/cockpit/login" in responses[0].headers["Location"]
    responses.append(s.post(env.url + "/cockpit/login", data={"token": ADMIN}, allow_redirects=False, timeout=5))
    assert responses[-1].status_code == 302 and "HttpOnly" in responses[-1].headers["Set-Cookie"]
    main = s.get(env.url + "/cockpit/", timeout=5)
    assert main.status_code == 200 and "default-src 'none'" in main.headers["Content-Security-Policy"]
    responses.append(main)
    # a form post without the per-session token (a cross-site request would lack it) is refused
    forged = s.post(env.url + "/cockpit/jobs/1/replay", data={}, timeout=5)
    assert forged.status_code == 403 and "form token" in forged.text
    cross = s.post(env.url + "/cockpit/jobs/1/replay", data={"csrf": "x"},
                   headers={"Origin": "https://evil.example"}, timeout=5)
    assert cross.status_code == 403
    assert requests.post(env.url + "/cockpit/logout", timeout=5, allow_redirects=False).status_code == 403
    for r in [*responses, forged, cross]:
        _no_secret(r.text + str(r.headers), r.url)


def test_the_page_is_off_without_an_admin_token(tmp_path: Path) -> None:
    e = relayenv.start(tmp_path)
    try:
        r = requests.get(e.url + "/cockpit/", timeout=5)
        assert r.status_code == 404 and "RELAY_ADMIN_TOKEN" in r.text
    finally:
        relayenv.stop(e)
