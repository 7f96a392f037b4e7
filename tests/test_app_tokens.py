"""Issue 10, pure and store parts: install checks, sealed tokens, one refresh per portal."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from relay.config import load_config
from relay.errors import BadRequest, ConfigError, Forbidden
from relay.intake.app import install, uninstall_token
from relay.portal.oauth import TokenKeeper
from relay.store import Store
from relay.vault import Vault, new_key
from tests.relayenv import database_bytes

KEY = new_key()
AUTH = {"access_token": "acc-1", "refresh_token": "ref-1", "application_token": "apptok-1", "expires_in": "3600",
        "member_id": "m123", "domain": "partner.bitrix24.ua", "client_endpoint": "https://partner.bitrix24.ua/rest/"}


def test_an_install_from_the_configured_portal_is_taken() -> None:
    got = install({"event": "ONAPPINSTALL", "auth": AUTH}, {}, domain="Partner.Bitrix24.ua", member_id="m123")
    assert (got.access_token, got.refresh_token, got.application_token, got.expires_in) == (
        "acc-1", "ref-1", "apptok-1", 3600.0)
    ui = install({"AUTH_ID": "a", "REFRESH_ID": "r", "APPLICATION_TOKEN": "t", "member_id": "m123",
                  "AUTH_EXPIRES": "3600"}, {"DOMAIN": "partner.bitrix24.ua"}, domain="partner.bitrix24.ua",
                 member_id=None)
    assert ui.refresh_token == "r"


@pytest.mark.parametrize("change, error", [
    ({"domain": "evil.example"}, Forbidden),
    ({"client_endpoint": "https://evil.example/rest/"}, Forbidden),
    ({"member_id": "other"}, Forbidden),
    ({"refresh_token": ""}, BadRequest),
])
def test_an_install_from_anywhere_else_is_refused(change: dict[str, str], error: type[Exception]) -> None:
    with pytest.raises(error):
        install({"auth": {**AUTH, **change}}, {}, domain="partner.bitrix24.ua", member_id="m123")


def test_uninstall_needs_the_application_token() -> None:
    assert uninstall_token({"auth": {"application_token": "t"}}) == "t"
    with pytest.raises(BadRequest):
        uninstall_token({"auth": {}})


def test_sealed_values_open_only_with_their_key() -> None:
    vault = Vault(KEY)
    sealed = vault.seal("secret-token")
    assert "secret-token" not in sealed and vault.open(sealed) == "secret-token"
    with pytest.raises(ConfigError, match="not the key"):
        Vault(new_key()).open(sealed)


def _config(tmp_path: Path) -> Any:
    (tmp_path / "m.yaml").write_text("fields: {TITLE: TITLE}\nlink_field: ORIGIN_ID\n")
    (tmp_path / "relay.yaml").write_text(f"""
target: {{webhook_url: "https://esb.example/rest/1/abcdefgh/"}}
public_url: https://relay.example
token_key: {KEY}
sources:
  - {{id: partner, mode: app, domain: partner.bitrix24.ua, client_id: app.1, client_secret: s3cret, mapping: m.yaml}}
""")
    return load_config(tmp_path / "relay.yaml", {})


def test_an_app_source_needs_its_keys(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("fields: {TITLE: TITLE}\nlink_field: ORIGIN_ID\n")
    (tmp_path / "relay.yaml").write_text("""
target: {webhook_url: "https://esb.example/rest/1/abcdefgh/"}
sources: [{id: partner, mode: app, domain: p.example, mapping: m.yaml}]
""")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "relay.yaml", {})
    assert "client_id, client_secret" in str(err.value)


def test_many_threads_on_an_expired_token_make_exactly_one_refresh(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = Store(f"sqlite:///{tmp_path}/relay.db")
    vault = Vault(KEY)
    store.save_install("partner", member_id="m", domain="partner.bitrix24.ua", access_token=vault.seal("acc-1"),
                       refresh_token=vault.seal("ref-1"), application_token=vault.seal("t"), expires_at=0)
    asked: list[dict[str, str]] = []

    def fetch(server: str, params: Any) -> dict[str, Any]:
        asked.append(dict(params))
        time.sleep(0.2)  # the others arrive while this refresh is in flight
        return {"access_token": "acc-2", "refresh_token": "ref-2", "expires_in": 3600}

    keepers = [TokenKeeper(config, store, fetch=fetch) for _ in range(2)]  # two "processes"
    source = config.source("partner")
    threads = [threading.Thread(target=keepers[i % 2].refresh, args=(source, "acc-1")) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(asked) == 1 and asked[0]["refresh_token"] == "ref-1" and asked[0]["client_secret"] == "s3cret"
    assert asked[0]["grant_type"] == "refresh_token"
    row = store.portal("partner")
    assert row is not None and vault.open(row.refresh_token) == "ref-2" and vault.open(row.access_token) == "acc-2"
    assert keepers[0].current(source) == ("https://partner.bitrix24.ua/rest/", "acc-2")
    db = database_bytes(tmp_path / "relay.db")
    assert b"acc-2" not in db and b"ref-2" not in db and b"ref-1" not in db  # nothing in clear
