"""Health: can the store write and commit durably right now?  (``GET /healthz``)

A check rewrites the one row of table ``health`` with the time, in a real committed transaction:

* SQLite: through the group committer, in the same ``BEGIN IMMEDIATE … COMMIT`` as handler calls
  (so it fails when they would: disk full, I/O errors, a write lock held too long); then a
  ``PRAGMA wal_checkpoint(PASSIVE)``, because commits only reach the WAL file and a read-only or
  immutable database file fails only when the WAL is copied into it; then the file must still be
  the one opened (not deleted or replaced) and its filesystem must have ``MIN_FREE_BYTES`` free
  (once the WAL is reused, small writes no longer need new disk space and would hide a full disk).
* PostgreSQL: the same write, with ``lock_timeout`` and ``statement_timeout`` (1.5 s and 2 s).

Bounded: the check runs in a helper thread and the caller waits at most ``timeout`` (``TIMEOUT``):
a locked, hung or unreachable database gives a reason, not a hung probe.  While a check hangs,
later calls wait for that same check instead of starting more.  Cheap: a successful check is reused
for ``CACHE_SECONDS``, so load balancers polling every second cost about one small write per second
and process; failures are not cached.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from relay.store.base import StoreBase
from relay.store.schema import HEALTH_WRITE

log = logging.getLogger("relay.store")

#: a successful check is reused this long (seconds)
CACHE_SECONDS = 1.0
#: the caller waits this long at most for a check (seconds)
TIMEOUT = 3.0
#: PostgreSQL: lock and statement timeout of the health write (milliseconds; a lock wait says so)
LOCK_TIMEOUT_MS, STATEMENT_TIMEOUT_MS = 1500, 2000
#: SQLite: less free space than this on the database's filesystem counts as a full disk
MIN_FREE_BYTES = 1 << 20


@dataclass
class _Check:
    pid: int = field(default_factory=os.getpid)
    done: threading.Event = field(default_factory=threading.Event)
    reason: str | None = None


class HealthMixin(StoreBase):
    """``check_writable``: a real committed write, bounded in time, cached briefly when it succeeds."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._health_lock = threading.Lock()
        self._health_check: _Check | None = None
        self._healthy_until = 0.0
        self._last_reason: str | None = None
        name = make_url(url).database if self.sqlite else None
        self._db_file = os.path.abspath(name) if name and name != ":memory:" else None
        self._db_identity = self._identity()

    def check_writable(self, timeout: float = TIMEOUT) -> str | None:
        """None when the store can write and commit durably; else a short reason without secrets.

        Never raises and returns within ``timeout`` seconds (a success is reused for ``CACHE_SECONDS``).
        """
        with self._health_lock:
            if time.monotonic() < self._healthy_until:
                return None
            check = self._health_check
            if check is None or check.done.is_set() or check.pid != os.getpid():  # none running (in this process)
                check = self._health_check = _Check()
                threading.Thread(target=self._run_check, args=(check,), name="relay-health", daemon=True).start()
        if not check.done.wait(timeout):
            return f"timed out after {timeout:g} s: the database is locked, busy or unreachable"
        return check.reason

    def _run_check(self, check: _Check) -> None:
        try:
            reason = self._check_once()
        except Exception as exc:  # the thread never dies without an answer
            reason = f"check failed: {self._short(exc)}"
        with self._health_lock:
            if reason is None:
                self._healthy_until = time.monotonic() + CACHE_SECONDS
            changed, self._last_reason = reason != self._last_reason, reason
        if changed:  # log changes only: a load balancer may ask every second
            log.log(logging.WARNING if reason else logging.INFO, "database %s", reason or "writable again")
        check.reason = reason
        check.done.set()

    def _check_once(self) -> str | None:
        if self._db_file is not None and (moved := self._file_moved()):
            return moved
        try:
            self._write_health(time.time())
        except Exception as exc:
            return f"not writable: {self._short(exc)}"
        if self._db_file is None:
            return None
        try:
            self._checkpoint()
        except Exception as exc:
            return f"not writable: {self._short(exc)} (copying the WAL into the database file)"
        st = os.statvfs(os.path.dirname(self._db_file))
        free = (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize
        if free < MIN_FREE_BYTES:
            return f"not writable: disk full ({free // 1024} KiB free where the database is)"
        return None

    def _write_health(self, now: float) -> None:
        if self._committer is not None:  # the handler's own write path (SQLite file)
            self._committer.write_health(now)
            return
        with self._tx() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
                conn.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
            conn.execute(text(HEALTH_WRITE), {"checked_at": now})

    def _checkpoint(self) -> None:
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            cur.close()
        finally:
            raw.close()

    def _identity(self) -> tuple[int, int] | None:
        if self._db_file is None:
            return None
        st = os.stat(self._db_file)
        return st.st_dev, st.st_ino

    def _file_moved(self) -> str | None:
        try:
            identity = self._identity()
        except FileNotFoundError:
            return "database file is gone (deleted or moved)"
        except OSError as exc:
            return f"database file cannot be read: {exc.strerror}"
        return None if identity == self._db_identity else "database file was replaced by another file"

    def _short(self, exc: BaseException) -> str:
        """The driver's message, first line only (no SQL, no parameters), without the password."""
        orig = getattr(exc, "orig", None) or exc  # SQLAlchemy's wrapper adds the SQL and its parameters
        first = next((line for line in str(orig).splitlines() if line.strip()), "")
        message = " ".join(first.split()) or type(orig).__name__
        password = make_url(self.url).password
        if password:
            message = message.replace(str(password), "***")
        return message[:200]
