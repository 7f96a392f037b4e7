"""Composition root: settings -> configuration, store, portal clients, pipeline, worker, web app.

The CLI, ``wsgi.py``, the demo and the tests build the relay through these functions so that every
entry point wires the same parts the same way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask

from relay.config import RelayConfig, RelayFile, SourceConfig, TargetConfig, load_config
from relay.errors import RelayError, TargetMisconfigured
from relay.portal.client import Credentials, PortalClient, Webhook
from relay.portal.oauth import TokenKeeper
from relay.portal.pacer import Pacer
from relay.redact import REDACTOR, configure_logging
from relay.settings import Settings, environment
from relay.store import Store
from relay.sync.pipeline import Pipeline
from relay.web.app import create_app
from relay.worker import Worker
from relay.yamlconf import load_yaml, validate

log = logging.getLogger(__name__)


def load(settings: Settings, config_path: Path | None = None) -> tuple[RelayConfig, Store]:
    """Load and validate the configuration, open the database, register secrets for redaction."""
    config = load_config(config_path or settings.config, environment())
    REDACTOR.add(config.secrets())
    return config, Store(settings.database_url)


def load_file_only(path: Path, env: Mapping[str, str]) -> RelayConfig:
    """``relay.yaml`` alone, without loading its mappings (``relay mapping init`` writes one)."""
    file = validate(RelayFile, load_yaml(path, env))
    config = RelayConfig(file=file, mappings={}, path=path)
    REDACTOR.add(config.secrets())
    return config


@dataclass
class Relay:
    """A wired relay: everything a web process or a worker process needs."""

    config: RelayConfig
    store: Store
    pipeline: Pipeline
    wake: threading.Event = field(default_factory=threading.Event)
    admin_token: str | None = None

    def app(self) -> Flask:
        """The Flask app; storing a call wakes this process's workers at once."""
        return create_app(self.config, self.store, on_enqueue=self.wake.set, admin_token=self.admin_token)

    def worker(self, name: str | None = None) -> Worker:
        """A worker sharing this relay's clients (and so its pacers)."""
        return Worker(self.config, self.store, self.pipeline, wake=self.wake, name=name)

    def check_target(self) -> None:
        """At start-up: refuse a target without the mappings' link fields (ConfigError); when the
        target cannot be reached now, warn — the workers check again before their first write."""
        try:
            self.pipeline.check_target()
        except TargetMisconfigured:
            raise
        except RelayError as exc:
            log.warning("could not check the target portal now (%s); checking before the first write", exc)

    def start_workers(self, count: int, stop: threading.Event) -> list[threading.Thread]:
        """Start ``count`` worker threads that run until ``stop`` is set."""
        threads = []
        for n in range(count):
            worker = self.worker()
            t = threading.Thread(target=worker.run, args=(stop,), name=f"relay-worker-{n}", daemon=True)
            t.start()
            threads.append(t)
        return threads


def portal_clients(config: RelayConfig, store: Store) -> tuple[PortalClient, dict[str, PortalClient]]:
    """The target's client and one per source (one pacer per portal)."""
    calls = config.file.calls

    def client(name: str, portal: TargetConfig | SourceConfig) -> PortalClient:
        if isinstance(portal, SourceConfig) and portal.mode == "app":
            creds: Credentials = keeper.credentials(portal)
        else:
            assert portal.webhook_url is not None
            creds = Webhook(portal.webhook_url.get_secret_value())
        return PortalClient(name, creds, Pacer(portal.limits.rate, portal.limits.burst),
                            timeout=(3.05, portal.timeout), attempts=calls.attempts, backoff=calls.backoff,
                            max_wait=calls.max_wait)

    keeper = TokenKeeper(config, store)
    return client("target", config.target), {s.id: client(f"source {s.id}", s) for s in config.file.sources}


def build(config: RelayConfig, store: Store) -> Relay:
    """Wire portal clients and the pipeline."""
    target, sources = portal_clients(config, store)
    return Relay(config=config, store=store, pipeline=Pipeline(config, store, target, sources))


def from_settings(settings: Settings | None = None) -> Relay:
    """Build the whole relay from ``RELAY_*`` settings."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)
    config, store = load(settings)
    relay = build(config, store)
    relay.admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
    return relay
