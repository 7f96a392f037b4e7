"""SQLite fast path of the store: one write lock per database, and group commit for ingress.

Part of the database seam (part of :mod:`relay.store`).  Two problems it solves:

* SQLite serialises writers, and its busy handler makes waiters sleep 1, 2, 5 … 100 ms in no fair
  order, so under load the p99 of a handler call was hundreds of ms.  :class:`WriteLock` makes every
  writer of this process, and of every process on the host (``fcntl.flock`` on ``<db>.lock``),
  queue in the kernel instead: a waiter wakes as soon as the lock is free.
* Each stored call cost a transaction and an fsync.  :class:`GroupCommitter` collects the calls that
  arrive while the previous commit runs and stores them all in one ``BEGIN IMMEDIATE … COMMIT``
  (one upsert each, on the raw connection); every caller gets its answer only after that commit, so
  a 200 still means the call is on disk (``synchronous=FULL``).  The ``/healthz`` write rides in the
  same groups (:meth:`GroupCommitter.write_health`), so it fails exactly when handler calls would.
"""

from __future__ import annotations

import fcntl
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from relay.models import Enqueued
from relay.store.schema import HEALTH_WRITE

UPSERT = """
INSERT INTO jobs (kind, source_id, deal_id, status, attempts, events, "trigger", event_token, payload,
                  available_at, created_at, updated_at)
VALUES ('sync', ?, ?, 'pending', 0, 1, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source_id, deal_id) WHERE status = 'pending' AND kind = 'sync'
DO UPDATE SET events = jobs.events + 1, updated_at = excluded.updated_at, "trigger" = excluded."trigger",
              payload = CASE WHEN excluded.payload = '{}' THEN jobs.payload ELSE excluded.payload END,
              event_token = CASE WHEN excluded.event_token IS NULL THEN jobs.event_token
                                 WHEN jobs.event_token IS NULL THEN excluded.event_token
                                 WHEN instr(char(10) || jobs.event_token || char(10),
                                            char(10) || excluded.event_token || char(10)) > 0 THEN jobs.event_token
                                 ELSE jobs.event_token || char(10) || excluded.event_token END
RETURNING id, events
"""
#: a 1C call: the job carries the record's data; a later call for the same record replaces it (latest wins)
UPSERT_PAYLOAD = """
INSERT INTO jobs (kind, source_id, deal_id, status, attempts, events, "trigger", event_token, payload,
                  available_at, created_at, updated_at)
VALUES ('sync', ?, ?, 'pending', 0, 1, ?, NULL, ?, ?, ?, ?)
ON CONFLICT (source_id, deal_id) WHERE status = 'pending' AND kind = 'sync'
DO UPDATE SET events = jobs.events + 1, updated_at = excluded.updated_at, "trigger" = excluded."trigger",
              payload = excluded.payload
RETURNING id, events
"""
MAX_GROUP = 512


class WriteLock:
    """A lock held around every write transaction: threads of this process, then other processes."""

    def __init__(self, path: str) -> None:
        self._path = path + ".lock"
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # after a fork: a descriptor of our own
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the duration of the block."""
        with self._thread_lock:
            fd = self._file()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)


@dataclass
class _Call:
    sql: str
    args: tuple[Any, ...] | dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    isolated: bool = False  # in a savepoint: its own failure does not undo the group's other calls
    row: tuple[Any, ...] | None = None
    error: BaseException | None = None


class GroupCommitter:
    """Stores handler calls in groups: one transaction (and one fsync) for all waiting calls."""

    def __init__(self, connect: Callable[[], Any], lock: WriteLock) -> None:
        self._connect, self._lock = connect, lock
        self._queue: queue.Queue[_Call] = queue.Queue()
        self._start_lock = threading.Lock()
        self._pid = 0

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid != os.getpid():  # first call in this process (also after a fork)
                self._queue = queue.Queue()
                threading.Thread(target=self._run, name="relay-group-commit", daemon=True).start()
                self._pid = os.getpid()

    def enqueue(self, items: list[tuple[str, str, str, str | None]], now: float,
                timeout: float = 60.0, payloads: list[str] | None = None) -> list[Enqueued]:
        """Store calls ``(source_id, deal_id, trigger, event_token)`` (with their payload JSON, default
        ``{}``: a non-empty one replaces the waiting job's); returns once all are committed."""
        texts = payloads or ["{}"] * len(items)
        calls = self._submit([_Call(UPSERT, (s, d, t, tok or None, p, now, now, now))
                              for (s, d, t, tok), p in zip(items, texts, strict=True)])
        out = []
        for call in self._wait(calls, timeout):
            assert call.row is not None
            out.append(Enqueued(job_id=int(call.row[0]), merged=int(call.row[1]) > 1))
        return out

    def enqueue_payloads(self, items: list[tuple[str, str, str, str]], now: float,
                         timeout: float = 60.0) -> list[Enqueued]:
        """Store calls ``(source_id, key, trigger, payload JSON)`` that carry their record's data."""
        calls = self._submit([_Call(UPSERT_PAYLOAD, (s, k, t, p, now, now, now)) for s, k, t, p in items])
        return [Enqueued(job_id=int(c.row[0]), merged=int(c.row[1]) > 1) for c in self._wait(calls, timeout)
                if c.row is not None]

    def write_health(self, now: float, timeout: float = 60.0) -> None:
        """Rewrite the health row in the next group; returns once committed (raises what the commit raised)."""
        self._wait(self._submit([_Call(HEALTH_WRITE, {"checked_at": now}, isolated=True)]), timeout)

    def _submit(self, calls: list[_Call]) -> list[_Call]:
        self._ensure_thread()
        for call in calls:
            self._queue.put(call)
        return calls

    @staticmethod
    def _wait(calls: list[_Call], timeout: float) -> list[_Call]:
        for call in calls:
            if not call.done.wait(timeout):
                raise TimeoutError("the database did not commit the call in time")
            if call.error is not None:
                raise call.error
        return calls

    def _run(self) -> None:
        conn = None
        while True:
            group = [self._queue.get()]
            while len(group) < MAX_GROUP:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if conn is None:
                try:  # the database may be gone: fail this group, try again with the next one
                    conn = self._connect()
                except Exception as exc:
                    self._finish(group, exc)
                    continue
            self._commit(conn, group)

    def _commit(self, conn: Any, group: list[_Call]) -> None:
        try:
            with self._lock.held():
                cur = conn.cursor()
                cur.execute("BEGIN IMMEDIATE")
                try:
                    for call in group:
                        if call.isolated:
                            self._isolated(cur, call)
                        else:
                            call.row = cur.execute(call.sql, call.args).fetchone()
                    cur.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # a failed COMMIT (disk full, I/O error) has rolled back already
                        try:
                            cur.execute("ROLLBACK")
                        except Exception:  # the first error is the one to report
                            pass
                    raise
        except Exception as exc:  # every caller of the group learns it: nothing was stored
            self._finish(group, exc)
            return
        self._finish(group, None)

    @staticmethod
    def _isolated(cur: Any, call: _Call) -> None:
        cur.execute("SAVEPOINT isolated")
        try:
            call.row = cur.execute(call.sql, call.args).fetchone()
        except Exception as exc:  # this call fails alone (a failing COMMIT still fails them all)
            cur.execute("ROLLBACK TO isolated")
            call.error = exc
        cur.execute("RELEASE isolated")

    @staticmethod
    def _finish(group: list[_Call], error: BaseException | None) -> None:
        for call in group:
            if error is not None:
                call.row, call.error = None, error
            call.done.set()
