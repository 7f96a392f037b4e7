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


def _postgres_admin_url() -> str | None:
    import os

    url = os.environ.get("RELAY_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("RELAY_TEST_NO_POSTGRES") == "1":
            pytest.skip("RELAY_TEST_NO_POSTGRES=1: PostgreSQL tests skipped on request")
        pytest.fail("RELAY_TEST_POSTGRES_URL is not set: run the suite with ./test, which starts PostgreSQL")
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    import uuid

    from sqlalchemy import create_engine, text

    admin_url = _postgres_admin_url()
    assert admin_url is not None
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """The store's contract runs on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/relay.db"
    return request.getfixturevalue("postgres_url")
