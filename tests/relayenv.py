"""A relay wired to two emulated portals over real HTTP, for end-to-end tests."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from relay.boot import Relay, build
from relay.config import load_config
from relay.emulator import EmulatedPortal, default_source_config, default_target_config
from relay.emulator.config import PortalConfig
from relay.store import Store, jobs
from relay.web.app import serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
APP_TOKEN = "app-sekret-token-0123456789"
ROBOT_KEY = "robot-sekret-key-0123456789"
SOURCE_SECRET = "src-sekret-9f8e7d"
TARGET_SECRET = "tgt-sekret-1a2b3c"
DEAL = {
    "TITLE": "Boiler", "STAGE_ID": "C1:PREPARATION", "CATEGORY_ID": "1", "OPPORTUNITY": "1500.00",
    "CURRENCY_ID": "RUB", "COMPANY_ID": "12", "ASSIGNED_BY_ID": "1", "UF_CRM_1700000000": "79", "COMMENTS": "hi",
}
ROWS = [
    {"PRODUCT_ID": 15, "PRODUCT_NAME": "Boiler X200", "PRICE": 1200.0, "QUANTITY": 1},
    {"PRODUCT_ID": 0, "PRODUCT_NAME": "Installation", "PRICE": 150.0, "QUANTITY": 2},
]


def write_config(folder: Path, source: EmulatedPortal, target: EmulatedPortal, *, mapping: str | None = None,
                 extra: str = "", batch_size: int = 25, create_margin: float = 0.5,
                 lease_seconds: float = 30) -> Path:
    """relay.yaml for these portals (secrets from the environment), with the example mapping."""
    (folder / "mappings").mkdir(parents=True, exist_ok=True)
    if mapping is None:
        shutil.copy(ROOT / "config/mappings/partner.yaml", folder / "mappings/partner.yaml")
    else:
        (folder / "mappings/partner.yaml").write_text(mapping)
    path = folder / "relay.yaml"
    path.write_text(f"""
target:
  webhook_url: ${{TARGET_WEBHOOK}}
  limits: {{rate: {target.config.rate}, burst: {target.config.burst}}}
  timeout: 2
  create_margin: {create_margin}
sources:
  - id: partner
    webhook_url: ${{SOURCE_WEBHOOK}}
    application_token: ${{APP_TOKEN}}
    robot_key: ${{ROBOT_KEY}}
    member_id: {source.config.member_id}
    domain: {source.config.domain}
    mapping: mappings/partner.yaml
    limits: {{rate: {source.config.rate}, burst: {source.config.burst}}}
    timeout: 2
calls:
  attempts: 2
  backoff: 0.01
worker:
  linger: 0
  batch_size: {batch_size}
  backoff_base: 0.05
  backoff_max: 0.2
  max_attempts: 5
  poll_interval: 0.05
  lease_seconds: {lease_seconds}
{extra}
""")
    return path


def database_bytes(path: Path) -> bytes:
    """A SQLite database's bytes with its write-ahead log (recent commits live there until a checkpoint)."""
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def env_for(source: EmulatedPortal, target: EmulatedPortal) -> dict[str, str]:
    """The variables write_config's file expects."""
    return {"TARGET_WEBHOOK": target.webhook_url, "SOURCE_WEBHOOK": source.webhook_url,
            "APP_TOKEN": APP_TOKEN, "ROBOT_KEY": ROBOT_KEY}


@dataclass
class RelayEnv:
    """Two emulated portals, a relay app on a real port, and its store."""

    source: EmulatedPortal
    target: EmulatedPortal
    relay: Relay
    url: str
    config_path: Path
    database_url: str

    @property
    def store(self) -> Store:
        return self.relay.store

    @property
    def handler(self) -> str:
        return f"{self.url}/b24/partner"

    def new_deal(self, **fields: Any) -> int:
        return self.source.add_deal({**DEAL, **fields}, rows=[dict(r) for r in ROWS])

    def event(self, deal_id: int, event: str = "ONCRMDEALUPDATE", token: str = APP_TOKEN) -> tuple[int, str]:
        return self.source.send_event(self.handler, event, deal_id, token)

    def post(self, data: Any, *, path: str = "/b24/partner", **kw: Any) -> requests.Response:
        return requests.post(self.url + path, data=data, timeout=5, **kw)

    def settle(self, timeout: float = 20.0) -> None:
        """Run the worker until no job is pending or running (retries included)."""
        worker = self.relay.worker("test-worker")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            worker.run_once()
            counts = self.store.counts()
            if not any(counts.get(k, {}).get(s) for k in ("sync", "notify") for s in ("pending", "running")):
                return
            time.sleep(0.02)
        raise AssertionError(f"queue did not settle: {self.store.counts()}")

    def process_env(self) -> dict[str, str]:
        """Environment for `relay` subprocesses sharing this relay's config and database."""
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        env.update(env_for(self.source, self.target))
        env.update({"RELAY_CONFIG": str(self.config_path), "RELAY_DATABASE_URL": self.database_url,
                    "RELAY_LOG_LEVEL": "WARNING"})
        return env

    def job_texts(self) -> list[str]:
        """Every stored job column as text (for the secret check)."""
        with self.store.engine.connect() as conn:
            return [" ".join(str(v) for v in row) for row in conn.execute(jobs.select())]


def start(tmp: Path, *, mapping: str | None = None, extra: str = "", rate: float = 50.0, burst: int = 50,
          batch_size: int = 25, database_url: str | None = None, create_margin: float = 0.5,
          lease_seconds: float = 30, portals: Callable[[PortalConfig, PortalConfig], None] | None = None,
          admin_token: str | None = None) -> RelayEnv:
    """Start portals and a relay; the caller stops them with stop().  ``portals`` may change the
    source's and target's emulator configuration first (e.g. declare custom fields)."""
    scfg, tcfg = default_source_config(), default_target_config()
    if portals is not None:
        portals(scfg, tcfg)
    scfg.secret, tcfg.secret = SOURCE_SECRET, TARGET_SECRET
    for cfg in (scfg, tcfg):
        cfg.rate, cfg.burst = rate, burst
    source, target = EmulatedPortal(scfg), EmulatedPortal(tcfg)
    source.start()
    target.start()
    path = write_config(tmp, source, target, mapping=mapping, extra=extra, batch_size=batch_size,
                        create_margin=create_margin, lease_seconds=lease_seconds)
    config = load_config(path, env_for(source, target))
    relay = build(config, Store(database_url or f"sqlite:///{tmp}/relay.db"))
    relay.admin_token = admin_token
    relay.pipeline.check_target()  # as `relay serve` does at start-up
    target.reset_log()
    server = serve_in_thread(relay.app())
    env = RelayEnv(source, target, relay, f"http://127.0.0.1:{server.server_port}", path,
                   database_url or f"sqlite:///{tmp}/relay.db")
    env._server = server  # type: ignore[attr-defined]
    return env


def stop(env: RelayEnv) -> None:
    env._server.shutdown()  # type: ignore[attr-defined]
    env.source.stop()
    env.target.stop()
    env.store.close()
