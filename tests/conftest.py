"""Shared fixtures; every test also checks that no secret reached a log record."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from relay.redact import QUIET_LOGGERS

#: every secret the tests configure contains this marker, so a leak is easy to spot
SECRET_MARK = "sekret"


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@pytest.fixture(autouse=True)
def no_secret_in_logs() -> Iterator[_Collector]:
    """Fail the test if any log record (raw, before redaction) holds a configured secret."""
    collector = _Collector()
    for name in QUIET_LOGGERS:  # as configure_logging does in production
        logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    try:
        yield collector
    finally:
        root.removeHandler(collector)
        root.setLevel(old_level)
    leaks = [line for line in collector.lines if SECRET_MARK in line.lower()]
    assert not leaks, f"secret in log records: {leaks[:3]}"


@pytest.fixture
def relay_env(tmp_path):  # type: ignore[no-untyped-def]
    """A relay on a real port between two emulated portals; checks job records for secrets after."""
    from tests.relayenv import start, stop

    env = start(tmp_path)
    try:
        yield env
        leaks = [t for t in env.job_texts() if SECRET_MARK in t.lower()]
        assert not leaks, f"secret in job records: {leaks[:3]}"
    finally:
        stop(env)
