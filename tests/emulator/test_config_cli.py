"""Portal configuration, the default pair and ``python -m relay.emulator``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
import requests

from relay.emulator import (
    EmulatedPortal,
    PortalConfig,
    default_source_config,
    default_target_config,
    start_default_pair,
)


def test_default_pair_matches_the_spec():
    src, dst = default_source_config(), default_target_config()
    assert src.domain == "partner.bitrix24.test" and dst.domain == "esb.bitrix24.test"
    assert src.categories[1] == ["C1:NEW", "C1:PREPARATION", "C1:EXECUTING", "C1:WON", "C1:LOSE"]
    assert dst.categories[3] == ["C3:NEW", "C3:PREPARATION", "C3:WON", "C3:LOSE"]
    assert set(src.enum_map("UF_CRM_1700000000")) == {"79", "80"}
    assert set(dst.enum_map("UF_CRM_DELIVERY")) == {"112", "113"}
    assert set(src.products) == {15, 16} and set(dst.products) == {301}
    assert set(src.users) == {1, 5} and set(dst.users) == {1, 17, 18}
    assert src.member_id != dst.member_id and len(src.member_id) == 32
    assert default_source_config().secret == src.secret  # stable across calls


@pytest.mark.parametrize("bad", [
    {"member_id": "xyz"},
    {"categories": {2: ["NEW"]}},
    {"uf_fields": {"SOURCE": "string"}},
    {"user_id": 99},
    {"burst": 0},
    {"no_such_key": 1},
])
def test_invalid_configs_are_refused(bad):
    with pytest.raises(ValueError):
        PortalConfig.from_dict(bad, default_source_config())


def test_from_dict_coerces_json_keys():
    cfg = PortalConfig.from_dict({"categories": {"0": ["NEW", "WON"], "2": ["C2:NEW"]},
                                  "users": {"1": "Root"}, "products": {"7": "Thing"}})
    assert cfg.categories == {0: ["NEW", "WON"], 2: ["C2:NEW"]}
    assert cfg.users == {1: "Root"} and cfg.products == {7: "Thing"}


def test_redacted_hides_the_secret_and_repr_too():
    portal = EmulatedPortal(default_source_config())
    assert portal.config.redacted()["secret"] == "***"
    assert portal.config.secret not in repr(portal)


def test_start_default_pair_and_stop_cleanly():
    source, target = start_default_pair()
    url = source.webhook_url
    try:
        assert requests.post(source.webhook_url + "profile", timeout=5).ok
        assert requests.post(target.webhook_url + "profile", timeout=5).ok
        assert source.port != target.port
    finally:
        source.stop()
        target.stop()
    assert not source.running
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(url + "profile", timeout=1)


def test_cli_prints_urls_and_stops_on_sigterm(tmp_path):
    cfg = tmp_path / "emu.json"
    cfg.write_text(json.dumps({"target": {"users": {"1": "Admin", "17": "M S", "18": "New One"}}}))
    proc = subprocess.Popen([sys.executable, "-m", "relay.emulator", "--config", str(cfg),
                             "--no-rate-limit"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        info = json.loads(line)
        src, dst = info["source"], info["target"]
        assert src["domain"] == "partner.bitrix24.test" and dst["domain"] == "esb.bitrix24.test"
        assert requests.post(src["webhook_url"] + "user.current", timeout=5).json()["result"]["ID"] == "1"
        users = requests.post(dst["webhook_url"] + "user.get", timeout=5).json()["result"]
        assert [u["ID"] for u in users] == ["1", "17", "18"]
        assert requests.get(dst["control_url"] + "info", timeout=5).ok
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
