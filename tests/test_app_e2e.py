"""Issue 10 end to end through real HTTP and the emulator: install (acceptance 1), a token expiring during
a burst of robot calls on 4 worker threads (3), offline events while the relay was stopped (4)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from relay.boot import Relay, build
from relay.config import load_config
from relay.emulator import EmulatedPortal, default_source_config, default_target_config
from relay.store import Store
from relay.vault import new_key
from relay.web.app import serve_in_thread
from tests.relayenv import DEAL, ROOT, ROWS, database_bytes

pytestmark = pytest.mark.e2e
CLIENT_ID, CLIENT_SECRET = "local.0123456789abcd.12345678", "app-client-secret-0123456789"


@dataclass
class App:
    source: EmulatedPortal
    target: EmulatedPortal
    relay: Relay
    url: str
    db: Path

    @property
    def handler(self) -> str:
        return f"{self.url}/b24/partner"

    def install(self) -> None:
        status, body = self.source.install_app(self.handler, f"{self.handler}/install", CLIENT_ID, CLIENT_SECRET)
        assert status == 200, body

    def new_deal(self, **fields: str) -> int:
        return self.source.add_deal({**DEAL, **fields}, rows=[dict(r) for r in ROWS])

    def settle(self, threads: int = 1, timeout: float = 60.0) -> None:
        workers = [self.relay.worker(f"w{i}") for i in range(threads)]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda w: w.run_once() + w.maybe_apps(), workers))
            counts = self.relay.store.counts()
            if not any(counts.get(k, {}).get(s) for k in ("sync", "notify") for s in ("pending", "running")):
                return
            time.sleep(0.05)
        raise AssertionError(f"not settled: {self.relay.store.counts()}")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    source = EmulatedPortal(default_source_config(token_lifetime=3600))
    target = EmulatedPortal(default_target_config())
    source.start()
    target.start()
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings/partner.yaml").write_text((ROOT / "config/mappings/partner.yaml").read_text())
    port_holder: list[int] = []
    server = None
    try:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port_holder.append(s.getsockname()[1])
        url = f"http://127.0.0.1:{port_holder[0]}"
        (tmp_path / "relay.yaml").write_text(f"""
target: {{webhook_url: "{target.webhook_url}", timeout: 5, create_margin: 0.5}}
public_url: {url}
token_key: {new_key()}
oauth_server: {source.oauth_url}
sources:
  - id: partner
    mode: app
    domain: {source.config.domain}
    member_id: {source.config.member_id}
    portal_url: {source.url}/
    client_id: {CLIENT_ID}
    client_secret: {CLIENT_SECRET}
    mapping: mappings/partner.yaml
    timeout: 5
calls: {{attempts: 2, backoff: 0.01}}
worker: {{linger: 0, batch_size: 25, backoff_base: 0.05, backoff_max: 0.2, poll_interval: 0.05}}
sweep: {{interval: 10}}
""")
        config = load_config(tmp_path / "relay.yaml", {})
        relay = build(config, Store(f"sqlite:///{tmp_path}/relay.db"))
        server = serve_in_thread(relay.app(), port=port_holder[0])
        yield App(source, target, relay, url, tmp_path / "relay.db")
    finally:
        if server is not None:
            server.shutdown()
        source.stop()
        target.stop()


def test_install_stores_sealed_tokens_registers_the_robot_and_binds_offline_events(app: App) -> None:
    app.install()
    app.settle()  # the worker makes the robot and the bindings
    tokens = app.source.app_tokens()
    raw = database_bytes(app.db)
    for secret in (tokens["access_token"], tokens["refresh_token"], tokens["application_token"]):
        assert secret and secret.encode() not in raw  # no token in clear in the database file
    [robot] = app.source.robots()
    assert robot["CODE"] == "b24relay_send" and robot["USE_SUBSCRIPTION"] == "Y"
    assert set(robot["RETURN_PROPERTIES"]) == {"target_deal_id", "target_deal_url", "status", "message"}
    assert {"funnel", "responsible", "note"} <= set(robot["PROPERTIES"])
    bound = {(b["event"].upper(), bool(b["offline"])) for b in app.source.bindings()}
    assert {("ONCRMDEALADD", True), ("ONCRMDEALUPDATE", True), ("ONOFFLINEEVENT", False)} <= bound
    assert {b["connector"] for b in app.source.bindings() if b["offline"]} == {"b24relay"}


def test_a_token_expiring_during_100_robot_calls_on_4_threads_is_refreshed_once(app: App) -> None:
    app.install()
    app.settle()
    deals = [app.new_deal(TITLE=f"Deal {i}") for i in range(100)]
    app.source.expire_tokens()
    before = app.source.oauth_refresh_count()
    def run(i: int) -> None:
        app.source.run_robot("b24relay_send", deals[i], {"note": f"n{i}"}, timeout_duration=0)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    app.settle(threads=4)
    for t in threads:
        t.join(30)
    assert app.source.oauth_refresh_count() - before == 1  # exactly one refresh for the whole burst
    assert len(app.target.deals()) == 100
    answers = app.source.robot_answers()
    assert len(answers) == 100 and {a["RETURN_VALUES"]["status"] for a in answers} == {"created"}
    row = app.relay.store.portal("partner")
    assert row is not None and row.version >= 2  # the rotated pair is stored


def test_deals_changed_while_the_relay_was_stopped_come_from_the_offline_queue_once(app: App) -> None:
    app.install()
    app.settle()
    deals = [app.new_deal(TITLE=f"Offline {i}") for i in range(50)]  # the relay "stopped": no worker runs
    for d in deals[:10]:
        app.source.update_deal(d, {"COMMENTS": "edited twice"})
    assert len(app.source.offline_queue()) >= 50
    app.relay.store.request_sweep("offline:partner")
    app.settle()
    assert sorted(int(d["UF_CRM_SOURCE_DEAL"].rsplit(":", 1)[1]) for d in app.target.deals()) == sorted(deals)
    assert app.source.offline_queue() == []  # read and cleared
    assert len(app.source.comments()) == 50  # the relay's own comments put nothing into the queue
    app.relay.store.request_sweep("offline:partner")
    app.settle()
    assert len(app.target.deals()) == 50 and app.source.offline_queue() == []
