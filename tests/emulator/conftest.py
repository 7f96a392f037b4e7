"""Fixtures for the emulator tests: started portals, a REST caller, a recording HTTP receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from relay.emulator import EmulatedPortal, PortalConfig, default_source_config, default_target_config


def call_rest(portal: EmulatedPortal, method: str, params: dict[str, Any] | None = None,
              **kwargs: Any) -> requests.Response:
    """POST JSON to ``<webhook_url><method>.json`` (what the relay's client does)."""
    kwargs.setdefault("timeout", 5)
    return requests.post(portal.method_url(method), json=params or {}, **kwargs)


@pytest.fixture
def rest() -> Any:
    """The :func:`call_rest` helper: ``rest(portal, "crm.deal.get", {"id": 1})``."""
    return call_rest


@pytest.fixture
def source() -> Iterator[EmulatedPortal]:
    """The default partner portal, rate limit off (limit tests build their own portal)."""
    with EmulatedPortal(default_source_config(enforce_rate=False)) as portal:
        yield portal


@pytest.fixture
def target() -> Iterator[EmulatedPortal]:
    """The default ESB portal, rate limit off."""
    with EmulatedPortal(default_target_config(enforce_rate=False)) as portal:
        yield portal


@pytest.fixture
def make_portal() -> Iterator[Any]:
    """Factory for portals with a custom config; all are stopped at teardown."""
    started: list[EmulatedPortal] = []

    def factory(**overrides: Any) -> EmulatedPortal:
        portal = EmulatedPortal(PortalConfig.from_dict(overrides, default_source_config())).start()
        started.append(portal)
        return portal

    yield factory
    for portal in started:
        portal.stop()


@dataclass
class Received:
    """One request captured by :func:`receiver`."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A tiny local handler that records every request and answers 200 ``ok``."""

    url: str
    calls: list[Received] = field(default_factory=list)

    def wait(self, count: int = 1, timeout: float = 3.0) -> list[Received]:
        """Block until ``count`` requests arrived (or ``timeout``); returns what arrived."""
        end = time.monotonic() + timeout
        while len(self.calls) < count and time.monotonic() < end:
            time.sleep(0.02)
        return list(self.calls)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """Start a recording HTTP server on 127.0.0.1 (the relay's handler stand-in)."""
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            rec = box["r"]
            rec.calls.append(Received("POST", self.path, dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box["r"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield box["r"]
    server.shutdown()
    server.server_close()
    thread.join(2)
