"""Issue 10, acceptance 5 and 6 through real HTTP: installs and calls from anywhere but the configured
portal are refused without a request to the address they name; uninstall deletes the tokens and
later calls are refused with a clear error."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

from relay.boot import build
from relay.config import load_config
from relay.emulator import EmulatedPortal, default_target_config
from relay.phpquery import build_query
from relay.store import Store
from relay.vault import new_key
from relay.web.app import serve_in_thread
from tests.relayenv import database_bytes

pytestmark = pytest.mark.e2e
DOMAIN = "partner.bitrix24.test"
KEY = new_key()


class Trap(BaseHTTPRequestHandler):
    """An address a forged body names: it must never be called."""

    hits: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        Trap.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *_: Any) -> None:
        return None


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[tuple[str, Store, str]]:
    target = EmulatedPortal(default_target_config())
    target.start()
    trap = HTTPServer(("127.0.0.1", 0), Trap)
    threading.Thread(target=trap.serve_forever, daemon=True).start()
    Trap.hits = []
    (tmp_path / "m.yaml").write_text("fields: {TITLE: TITLE}\nlink_field: ORIGIN_ID\n")
    (tmp_path / "relay.yaml").write_text(f"""
target: {{webhook_url: "{target.webhook_url}"}}
public_url: https://relay.example
token_key: {KEY}
sources:
  - {{id: partner, mode: app, domain: {DOMAIN}, member_id: m-partner, client_id: app.1, client_secret: s3cret-0001,
     mapping: m.yaml}}
""")
    config = load_config(tmp_path / "relay.yaml", {})
    store = Store(f"sqlite:///{tmp_path}/relay.db")
    server = serve_in_thread(build(config, store).app())
    try:
        yield f"http://127.0.0.1:{server.server_port}", store, f"http://127.0.0.1:{trap.server_port}/rest/"
    finally:
        server.shutdown()
        trap.shutdown()
        target.stop()


def auth(**change: str) -> dict[str, str]:
    base = {"access_token": "acc-1", "refresh_token": "ref-1", "application_token": "apptok-0001", "expires_in": "3600",
            "member_id": "m-partner", "domain": DOMAIN, "client_endpoint": f"https://{DOMAIN}/rest/",
            "server_endpoint": "https://oauth.bitrix.info/rest/", "scope": "crm,im,bizproc", "status": "L"}
    return {**base, **change}


def post(url: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(url, data=build_query(body), timeout=10,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})


def robot(token: str, endpoint: str, member: str = "m-partner") -> dict[str, Any]:
    return {"workflow_id": "wf1", "code": "b24relay_send", "document_id": ["crm", "CCrmDocumentDeal", "DEAL_7"],
            "document_type": ["crm", "CCrmDocumentDeal", "DEAL"], "event_token": "wf1|a|s", "ts": "1",
            "auth": auth(application_token=token, client_endpoint=endpoint, member_id=member)}


def test_forged_installs_and_calls_are_refused_and_never_followed(relay: tuple[str, Store, str]) -> None:
    url, store, trap = relay
    handler = f"{url}/b24/partner"
    for body in ({"event": "ONAPPINSTALL", "auth": auth(client_endpoint=trap)},
                 {"event": "ONAPPINSTALL", "auth": auth(member_id="someone-else")},
                 {"event": "ONAPPINSTALL", "auth": auth(domain="127.0.0.1")}):
        assert post(f"{handler}/install", body).status_code == 403
    assert store.portal("partner") is None
    assert post(f"{handler}/install", {"event": "ONAPPINSTALL", "auth": auth()}).status_code == 200
    assert post(handler, robot("wrong-token-0001", f"https://{DOMAIN}/rest/")).status_code == 403
    assert post(handler, robot("apptok-0001", trap, member="someone-else")).status_code == 403
    assert post(handler, robot("apptok-0001", trap)).status_code == 403  # a right token, a foreign endpoint
    assert post(handler, robot("apptok-0001", f"https://{DOMAIN}/rest/")).status_code == 200
    assert Trap.hits == []  # no request ever went to an address taken from a body
    assert [j.deal_id for j in store.jobs(kind="sync")] == ["7"]
    raw = database_bytes(Path(store.url.split("///")[1]))
    assert b"acc-1" not in raw and b"ref-1" not in raw and b"apptok-0001" not in raw


def test_uninstall_deletes_the_tokens_and_refuses_later_calls(relay: tuple[str, Store, str]) -> None:
    url, store, _ = relay
    handler = f"{url}/b24/partner"
    assert post(f"{handler}/install", {"event": "ONAPPINSTALL", "auth": auth()}).status_code == 200
    wrong = {"event": "ONAPPUNINSTALL", "data": {"LANGUAGE_ID": "ru", "CLEAN": "0"},
             "auth": {"application_token": "not-it", "member_id": "m-partner", "domain": DOMAIN}}
    assert post(handler, wrong).status_code == 403 and store.portal("partner") is not None
    right = {**wrong, "auth": {**wrong["auth"], "application_token": "apptok-0001"}}
    answer = post(handler, right)
    assert answer.status_code == 200 and answer.json() == {"ok": True, "uninstalled": "partner"}
    assert store.portal("partner") is None
    refused = post(handler, robot("apptok-0001", f"https://{DOMAIN}/rest/"))
    assert refused.status_code == 403 and "not installed" in refused.json()["error"]
    assert store.jobs(kind="sync") == []
