"""The `relay` command as an integrator runs it: real gunicorn, real processes, emulated portals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from relay.emulator import EmulatedPortal, default_source_config, default_target_config
from tests.relayenv import APP_TOKEN, DEAL, ROBOT_KEY, ROOT, ROWS, SOURCE_SECRET, TARGET_SECRET, env_for, write_config

pytestmark = pytest.mark.e2e
RELAY = str(Path(sys.executable).with_name("relay"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def portals():  # type: ignore[no-untyped-def]
    scfg, tcfg = default_source_config(), default_target_config()
    scfg.secret, tcfg.secret = SOURCE_SECRET, TARGET_SECRET
    with EmulatedPortal(scfg) as source, EmulatedPortal(tcfg) as target:
        yield source, target


def relay_env(tmp: Path, source: EmulatedPortal, target: EmulatedPortal) -> dict[str, str]:
    config = write_config(tmp, source, target)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(env_for(source, target))
    env.update({"RELAY_CONFIG": str(config), "RELAY_DATABASE_URL": f"sqlite:///{tmp}/relay.db"})
    return env


def wait_for(predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return False


def test_serve_relays_events_and_robot_calls_then_stops_on_sigterm(tmp_path: Path, portals) -> None:  # type: ignore[no-untyped-def]
    source, target = portals
    env, port = relay_env(tmp_path, source, target), free_port()
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([RELAY, "serve", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: requests.get(base + "/healthz", timeout=1).status_code == 200), log_text(log)
        first = source.add_deal(dict(DEAL), rows=[dict(r) for r in ROWS])
        second = source.add_deal(dict(DEAL, TITLE="Second"), rows=[])
        assert source.send_event(f"{base}/b24/partner", "ONCRMDEALUPDATE", first, APP_TOKEN)[0] == 200
        assert source.send_robot(f"{base}/b24/partner?key={ROBOT_KEY}", second)[0] == 200
        assert wait_for(lambda: len(source.comments()) == 2), log_text(log)
        assert sorted(d["TITLE"] for d in target.deals()) == [
            f"Boiler ({source.config.domain})", f"Second ({source.config.domain})"]
        jobs = subprocess.run([RELAY, "jobs"], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
        assert "created" in jobs.stdout and "notified" in jobs.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    text = log_text(log)
    assert SOURCE_SECRET not in text and TARGET_SECRET not in text and ROBOT_KEY not in text


def log_text(log) -> str:  # type: ignore[no-untyped-def]
    log.flush()
    log.seek(0)
    return log.read()


def test_worker_process_and_replay_of_a_dead_job(tmp_path: Path, portals) -> None:  # type: ignore[no-untyped-def]
    source, target = portals
    env = relay_env(tmp_path, source, target)
    mapping = tmp_path / "mappings/partner.yaml"
    good = mapping.read_text()
    mapping.write_text(good.replace('{"79": "112", "80": "113"}', '{"80": "113"}'))  # 79 unmapped
    port = free_port()
    web = subprocess.Popen([RELAY, "serve", "--port", str(port), "--no-worker"], env=env, cwd=tmp_path,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: requests.get(base + "/healthz", timeout=1).status_code == 200)
        deal_id = source.add_deal(dict(DEAL), rows=[dict(r) for r in ROWS])
        assert source.send_event(f"{base}/b24/partner", "ONCRMDEALUPDATE", deal_id, APP_TOKEN)[0] == 200
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=30)
    run = lambda *a: subprocess.run([RELAY, *a], env=env, cwd=tmp_path, capture_output=True, text=True)  # noqa: E731
    assert run("worker", "--once", "--timeout", "30").returncode == 0
    dead = run("jobs", "--status", "dead")
    assert "UF_CRM_1700000000" in dead.stdout and "'79'" in dead.stdout, dead.stdout
    assert target.deals() == [] and source.comments(deal_id) == []  # failures go to the integrator
    job_id = dead.stdout.splitlines()[1].split()[0]
    mapping.write_text(good)  # the integrator fixes the mapping
    assert "replayed" in run("replay", job_id).stdout
    assert run("worker", "--once", "--timeout", "30").returncode == 0
    assert len(target.deals()) == 1


def test_check_reports_config_errors_with_file_key_and_line(tmp_path: Path, portals) -> None:  # type: ignore[no-untyped-def]
    source, target = portals
    env = relay_env(tmp_path, source, target)
    ok = subprocess.run([RELAY, "check"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0 and "source partner" in ok.stdout
    config = Path(env["RELAY_CONFIG"])
    config.write_text(config.read_text().replace("timeout: 2\n  create_margin", "timeout: -1\n  create_margin"))
    bad = subprocess.run([RELAY, "check"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "relay.yaml" in bad.stderr and "target.timeout" in bad.stderr and "(line 5)" in bad.stderr, bad.stderr
    assert SOURCE_SECRET not in bad.stderr


def test_demo_prints_the_relayed_deal() -> None:
    out = subprocess.run([RELAY, "demo"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "target deal (ESB)" in out.stdout and '"UF_CRM_SOURCE_DEAL"' in out.stdout
    assert "its product rows" in out.stdout and "Boiler X200" in out.stdout
    assert "timeline comment on the source deal" in out.stdout and "создана сделка [url=https://" in out.stdout


def test_serve_and_worker_refuse_a_target_without_the_link_field(tmp_path: Path, portals) -> None:  # type: ignore[no-untyped-def]
    source, target = portals
    env = relay_env(tmp_path, source, target)
    mapping = tmp_path / "mappings/partner.yaml"
    mapping.write_text(mapping.read_text().replace("link_field: UF_CRM_SOURCE_DEAL", "link_field: UF_CRM_MISSING"))
    for args in (["worker", "--once"], ["serve", "--port", str(free_port())]):
        out = subprocess.run([RELAY, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out.stdout + out.stderr
        assert "UF_CRM_MISSING" in out.stderr and "link_field: ORIGIN_ID" in out.stderr
        assert TARGET_SECRET not in out.stderr


@pytest.mark.parametrize("breakage", ["unknown key", "missing variable"])
def test_serve_and_worker_stop_with_code_2_and_file_line_before_binding(tmp_path: Path, portals,  # type: ignore[no-untyped-def]
                                                                        breakage: str) -> None:
    source, target = portals
    env = relay_env(tmp_path, source, target)
    mapping = tmp_path / "mappings/partner.yaml"
    text = mapping.read_text()
    if breakage == "unknown key":
        mapping.write_text(text.replace("create_only:", "create_onyl:"))
        expected = ["partner.yaml", "create_onyl"]
    else:
        mapping.write_text(text.replace("SOURCE_ID: {const: PARTNER}", "SOURCE_ID: {const: \"${PARTNER_SOURCE_ID}\"}"))
        expected = ["partner.yaml", "PARTNER_SOURCE_ID"]
    line = next(n for n, row in enumerate(mapping.read_text().splitlines(), 1)
                if "create_onyl" in row or "PARTNER_SOURCE_ID" in row)
    port = free_port()
    for args in (["serve", "--port", str(port)], ["serve", "--no-worker", "--port", str(port)], ["worker"]):
        out = subprocess.run([RELAY, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out.stdout + out.stderr
        assert all(e in out.stderr for e in expected) and f"line {line}" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr + out.stdout and "Listening at" not in out.stderr
        with socket.socket() as s:  # nothing was left bound to the port
            s.bind(("127.0.0.1", port))
