"""Acceptance 8 of issue 8: several worker processes and SIGKILL at random moments, with companies and
contacts in play — 0 duplicate deals, companies or contacts on the target."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.relayenv import RelayEnv, start, stop
from tests.test_linked_records import CLIENTS, EXAMPLE, _phone
from tests.test_scale import NO_SWEEP, sigkill_loop, spawn_worker, stop_workers, wait_settled

pytestmark = pytest.mark.e2e


def _clients(env: RelayEnv, companies: int, contacts: int) -> tuple[list[int], list[int]]:
    cos = [env.source.add_company({"TITLE": f"Client {n}", "PHONE": _phone(f"+7903{n:07d}")}) for n in range(companies)]
    for n, company in enumerate(cos):
        env.source.call("crm.requisite.add", {"fields": {"ENTITY_TYPE_ID": 4, "ENTITY_ID": company, "PRESET_ID": 1,
                                                         "NAME": "r", "RQ_INN": f"55{n:08d}"}})
    people = [env.source.add_contact({"NAME": f"P{n}", "PHONE": _phone(f"+7904{n:07d}")}) for n in range(contacts)]
    return cos, people


def _deals(env: RelayEnv, n: int, cos: list[int], people: list[int]) -> list[int]:
    return [env.new_deal(TITLE=f"Deal {i}", COMPANY_ID=str(cos[i % len(cos)]),
                         CONTACT_IDS=[people[i % len(people)], people[(i + 1) % len(people)]]) for i in range(n)]


def assert_clients_once(env: RelayEnv, cos: list[int], people: list[int]) -> None:
    for records, wanted in ((env.target.companies(), cos), (env.target.contacts(), people)):
        stamps = Counter(str(r.get("ORIGIN_ID")) for r in records)
        assert stamps == Counter({str(i): 1 for i in wanted}), f"duplicates or missing: {stamps}"
    company_of = {str(c["ID"]): str(c["ORIGIN_ID"]) for c in env.target.companies()}
    contact_of = {c["ID"]: str(c["ORIGIN_ID"]) for c in env.target.contacts()}
    for deal in env.target.deals():
        source = env.source.deal(int(deal["UF_CRM_SOURCE_DEAL"].rsplit(":", 1)[1]))
        assert source is not None
        assert company_of[str(deal["COMPANY_ID"])] == str(source["COMPANY_ID"])
        bound = [contact_of[str(b["CONTACT_ID"])] for b in env.target.deal_contacts(int(deal["ID"]))]
        assert sorted(bound) == sorted(str(b["CONTACT_ID"]) for b in env.source.deal_contacts(int(source["ID"])))


def assert_deals_once(env: RelayEnv, deals: list[int]) -> None:
    stamps = Counter(d["UF_CRM_SOURCE_DEAL"].rsplit(":", 1)[1] for d in env.target.deals())
    assert stamps == Counter({str(d): 1 for d in deals})


def _start(tmp_path: Path, postgres_url: str, batch_size: int) -> RelayEnv:
    return start(tmp_path, mapping=EXAMPLE + CLIENTS, rate=100.0, burst=5000, batch_size=batch_size,
                 database_url=postgres_url, extra=NO_SWEEP)


def test_four_workers_share_companies_and_contacts_without_duplicates(tmp_path: Path, postgres_url: str) -> None:
    env = _start(tmp_path, postgres_url, batch_size=5)
    workers = [spawn_worker(env, tmp_path / "workers.log") for _ in range(4)]
    try:
        cos, people = _clients(env, 6, 9)
        deals = _deals(env, 60, cos, people)
        events = [d for d in deals for _ in range(3)]
        random.Random(3).shuffle(events)
        for deal in events:
            assert env.event(deal)[0] == 200
        wait_settled(env, 60, 120)
        assert_deals_once(env, deals)
        assert_clients_once(env, cos, people)
        assert env.store.jobs(status="dead", limit=5) == []
    finally:
        stop_workers(workers)
        stop(env)


def test_sigkill_with_clients_never_duplicates_a_company_or_contact(tmp_path: Path, postgres_url: str) -> None:
    env = _start(tmp_path, postgres_url, batch_size=4)
    cfg = env.config_path.read_text().replace("lease_seconds: 30", "lease_seconds: 5").replace(
        "max_attempts: 5", "max_attempts: 100")
    env.config_path.write_text(cfg)
    for portal in (env.source, env.target):
        portal.inject("timeout", delay=0.1, times=-1)  # every request takes a while: kills land mid-flight
    log = tmp_path / "workers.log"
    workers = [spawn_worker(env, log) for _ in range(3)]
    rng = random.Random(5)
    kills = 0
    done = threading.Event()
    try:
        cos, people = _clients(env, 12, 20)
        deals = _deals(env, 80, cos, people)

        def send() -> None:
            for deal_id in deals:
                env.event(deal_id)
                time.sleep(0.01)
            while not done.is_set():  # partners keep editing clients and deals
                # titles stay unique: the mapping's `title` rule rightly links a company first relayed
                # while it shares a title with one already on the target (no company of its own)
                version, company = rng.randrange(99), rng.choice(cos)
                title = f"Client {company} v{version}"
                env.source.call("crm.company.update", {"id": company, "fields": {"TITLE": title}})
                env.event(rng.choice(deals))
                time.sleep(0.05)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        kills = sigkill_loop(env, workers, log, rng, 20, 150)
        done.set()
        sender.join(10)
        for deal_id in deals:  # one last transfer of each deal carries the newest company titles
            env.event(deal_id)
        wait_settled(env, 80, 150)
        assert_deals_once(env, deals)
        assert_clients_once(env, cos, people)
        titles: dict[str, Any] = {str(c["ID"]): c["TITLE"] for c in env.source.companies()}
        for company in env.target.companies():
            assert company["TITLE"] == titles[str(company["ORIGIN_ID"])]
        assert env.store.jobs(kind="sync", status="dead", limit=5) == []
    finally:
        done.set()
        stop_workers(workers)
        stop(env)
    assert kills >= 20
