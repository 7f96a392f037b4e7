"""The store's connection: engines (SQLite pragmas, write transactions), migrations, health."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url

from relay.store.schema import MIGRATIONS
from relay.store.sqlite import GroupCommitter, WriteLock


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=60000", "foreign_keys=ON"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # writers take the write lock up front (no deadlocking lock upgrades); readers do not block
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("relay_write") else "BEGIN")

    return engine


class StoreBase:
    """One database: SQLite (embedded default) or PostgreSQL; every method is one short transaction."""

    def __init__(self, url: str, *, group_commit: bool = True) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite")
        self.engine = _sqlite_engine(url) if self.sqlite else create_engine(url, pool_pre_ping=True)
        self._lock: WriteLock | None = None
        self._committer: GroupCommitter | None = None
        if self.sqlite and make_url(url).database not in (None, "", ":memory:"):
            self._lock = WriteLock(str(make_url(url).database))
            if group_commit:
                self._committer = GroupCommitter(self._raw_connection, self._lock)
        self.migrate()

    def _raw_connection(self) -> Any:
        return self.engine.raw_connection()  # kept by the committer thread for good

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A write transaction (under the SQLite write lock when there is one)."""
        writer = self.engine.execution_options(relay_write=True)
        if self._lock is None:
            with writer.begin() as conn:
                yield conn
            return
        with self._lock.held(), writer.begin() as conn:
            yield conn

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic); safe when several processes start at once."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(724001)"))  # one migrator at a time
            names = set(inspect(conn).get_table_names())
            cfg.attributes["connection"] = conn
            if "jobs" in names and "alembic_version" not in names:
                command.stamp(cfg, "0001")  # created before migrations existed
            command.upgrade(cfg, "head")

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def ping(self) -> None:
        """Raise if the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
