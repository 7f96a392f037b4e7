"""``/healthz`` is 200 only when the store can write and commit durably (issue 7, point 7).

Real failures, no mocks: a full disk is a tiny tmpfs filled with a filler file (needs ``mount``:
root with CAP_SYS_ADMIN); a read-only database file is ``chattr +i`` (root; a filesystem that
honours it for already-open files, such as ext4 — tmpfs does not); a locked database is its write
lock held by another holder; on PostgreSQL, ``default_transaction_read_only``, a table lock and a
dropped database.  A test whose mechanism is unavailable is skipped and says why.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select, text

from relay import __version__
from relay.store import Store
from relay.store.health import CACHE_SECONDS, TIMEOUT
from relay.store.schema import HEALTH_WRITE, health
from relay.store.sqlite import UPSERT, GroupCommitter, WriteLock, _Call
from tests.relayenv import RelayEnv, start, stop

# --- helpers -------------------------------------------------------------------------------------


def checked_at(store: Store) -> float:
    with store.engine.connect() as conn:
        return float(conn.execute(select(health.c.checked_at).where(health.c.id == 1)).scalar_one())


def healthz(env: RelayEnv) -> requests.Response:
    return requests.get(env.url + "/healthz", timeout=TIMEOUT + 5)


def wait_for_status(env: RelayEnv, status: int, within: float = TIMEOUT + CACHE_SECONDS + 5) -> requests.Response:
    """Poll /healthz until it answers ``status`` (a success is cached for a second); fail otherwise."""
    deadline = time.monotonic() + within
    while True:
        reply = healthz(env)
        if reply.status_code == status or time.monotonic() > deadline:
            assert reply.status_code == status, reply.text
            return reply
        time.sleep(0.1)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for this test (skipped when this sandbox cannot mount)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mnt
    finally:  # lazily: the group committer keeps its connection open until the process exits
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder: Path) -> Path:
    """Write a filler file until the filesystem is full."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == 28, exc  # ENOSPC
    finally:
        os.close(fd)
    return filler


def chattr(flag: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, text=True)


def immutable_works(folder: Path) -> str | None:
    """None when ``chattr +i`` here stops writes through an already-open descriptor; else why not."""
    probe = folder / "immutable-probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            done = chattr("+i", probe)
        except FileNotFoundError:
            return "chattr is not installed"
        if done.returncode != 0:
            return f"chattr +i fails here: {done.stderr.strip()}"
        try:
            os.write(fd, b"x")
        except OSError:
            return None
        return "this filesystem ignores the immutable flag for open files (tmpfs does)"
    finally:
        os.close(fd)
        chattr("-i", probe)
        probe.unlink()


@pytest.fixture
def sqlite_env(tmp_path: Path) -> Iterator[RelayEnv]:
    env = start(tmp_path)
    try:
        yield env
    finally:
        stop(env)


# --- the store's contract, on SQLite and PostgreSQL ----------------------------------------------


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    yield s
    s.close()


def test_a_check_commits_the_health_row_and_a_success_is_reused_briefly(store: Store) -> None:
    before = time.time()
    assert store.check_writable() is None
    first = checked_at(store)
    assert first >= before
    for _ in range(50):  # a load balancer's burst: one write, not fifty
        assert store.check_writable() is None
    assert checked_at(store) == first
    time.sleep(CACHE_SECONDS + 0.1)
    assert store.check_writable() is None
    assert checked_at(store) > first


def test_a_held_lock_gives_a_reason_within_the_timeout(store: Store, database_url: str) -> None:
    if store.sqlite:  # another process holding the host-wide write lock
        fd = os.open(str(store._lock._path), os.O_RDWR | os.O_CREAT, 0o600)  # type: ignore[union-attr]
        fcntl.flock(fd, fcntl.LOCK_EX)
        release = lambda: (fcntl.flock(fd, fcntl.LOCK_UN), os.close(fd))  # noqa: E731
    else:  # another session holding a lock on the health row's table
        engine = create_engine(database_url)
        conn = engine.connect()
        conn.execute(text("LOCK TABLE health IN ACCESS EXCLUSIVE MODE"))
        release = lambda: (conn.rollback(), conn.close(), engine.dispose())  # noqa: E731
    try:
        started = time.monotonic()
        reason = store.check_writable(timeout=TIMEOUT)
        took = time.monotonic() - started
        assert reason is not None and took < TIMEOUT + 0.5
        if store.sqlite:
            assert reason == f"timed out after {TIMEOUT:g} s: the database is locked, busy or unreachable"
        else:  # PostgreSQL's lock_timeout answers first
            assert reason == "not writable: canceling statement due to lock timeout", reason
        again = time.monotonic()
        assert store.check_writable(timeout=0.2) is not None  # waits for the hung check, starts no other
        assert time.monotonic() - again < 1
    finally:
        release()
    deadline = time.monotonic() + 10
    while (reason := store.check_writable()) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert reason is None


def test_a_health_write_failing_alone_does_not_undo_the_calls_of_its_group(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/relay.db")
    try:
        with store.engine.connect() as conn:
            conn.exec_driver_sql("DROP TABLE health")
            conn.commit()
        committer = GroupCommitter(store._raw_connection, WriteLock(f"{tmp_path}/relay.db"))
        raw = store._raw_connection()
        group = [_Call(HEALTH_WRITE, {"checked_at": 1.0}, isolated=True),
                 _Call(UPSERT, ("p", "7", "E", None, "{}", 1.0, 1.0, 1.0))]
        committer._commit(raw, group)
        assert isinstance(group[0].error, sqlite3.OperationalError) and "no such table" in str(group[0].error)
        assert group[1].error is None and group[1].row is not None
        assert store.counts() == {"sync": {"pending": 1}}
        raw.close()
        assert store.check_writable() == "not writable: no such table: health"
    finally:
        store.close()


def test_a_full_disk_fails_the_write_path_itself(tmpfs: Path) -> None:
    store = Store(f"sqlite:///{tmpfs}/relay.db")
    try:
        assert store.check_writable() is None
        raw = store._raw_connection()
        raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the next commit must grow the WAL
        raw.close()
        filler = fill(tmpfs)
        time.sleep(CACHE_SECONDS + 0.1)
        # not "cannot rollback - no transaction is active": a failed COMMIT has rolled back already
        assert store.check_writable() == "not writable: database or disk is full"
        with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
            store.enqueue_sync("p", "7", "E")  # the handler's calls fail the same way
        filler.unlink()
        assert store.check_writable() is None
        assert store.enqueue_sync("p", "7", "E").job_id
    finally:
        store.close()


def test_a_deleted_sqlite_file_is_reported(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/relay.db")
    try:
        assert store.check_writable() is None
        for suffix in ("", "-wal", "-shm"):
            Path(f"{tmp_path}/relay.db{suffix}").unlink(missing_ok=True)
        time.sleep(CACHE_SECONDS + 0.1)
        assert store.check_writable() == "database file is gone (deleted or moved)"
    finally:
        store.close()


def test_the_group_committer_survives_a_database_it_cannot_open(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    store = Store(f"sqlite:///{folder}/relay.db")
    try:
        store.engine.dispose()  # no pooled connection left to reuse
        shutil.rmtree(folder)
        started = time.monotonic()
        with pytest.raises(Exception, match="unable to open database file"):
            store.enqueue_sync("p", "7", "E")
        assert time.monotonic() - started < 5  # an answer, not the 60 s wait on a dead committer thread
        assert store.check_writable() == "database file is gone (deleted or moved)"
        folder.mkdir()
        with pytest.raises(Exception, match="no such table: jobs"):  # its thread is still there, connecting anew
            store.enqueue_sync("p", "7", "E")
    finally:
        store.close()


def test_read_only_and_dropped_postgres_are_reported(postgres_url: str) -> None:
    store = Store(postgres_url)
    name = postgres_url.rsplit("/", 1)[1]
    admin = create_engine(postgres_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    try:
        assert store.check_writable() is None
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
        time.sleep(CACHE_SECONDS + 0.1)
        assert store.check_writable() == "not writable: cannot execute INSERT in a read-only transaction"
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
        assert store.check_writable() is None
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        time.sleep(CACHE_SECONDS + 0.1)
        reason = store.check_writable()
        assert reason is not None and reason.startswith("not writable: ") and "does not exist" in reason, reason
    finally:
        store.close()
        admin.dispose()


# --- over HTTP, a relay on a real port -----------------------------------------------------------


def test_healthy_relay_answers_200_with_its_version(sqlite_env: RelayEnv) -> None:
    reply = healthz(sqlite_env)
    assert reply.status_code == 200 and reply.json() == {"status": "ok", "version": __version__}


def test_full_disk_gives_503_and_freeing_it_200(tmp_path: Path, tmpfs: Path) -> None:
    env = start(tmp_path, database_url=f"sqlite:///{tmpfs}/relay.db")
    try:
        wait_for_status(env, 200)
        filler = fill(tmpfs)
        reply = wait_for_status(env, 503)
        assert reply.json()["status"] == "error"
        # either the commit fails ("database or disk is full") or, the WAL being reused, the free space check
        assert reply.json()["database"].startswith("not writable: ") and "full" in reply.json()["database"]
        filler.unlink()
        assert wait_for_status(env, 200).json()["status"] == "ok"
    finally:
        stop(env)


@pytest.mark.parametrize("files", [("relay.db",), ("relay.db", "relay.db-wal")], ids=["db-file", "db-and-wal"])
def test_read_only_database_file_gives_503(sqlite_env: RelayEnv, tmp_path: Path, files: tuple[str, ...]) -> None:
    why = immutable_works(tmp_path)
    if why is not None:
        pytest.skip(f"cannot make a file read-only for root here: {why}")
    wait_for_status(sqlite_env, 200)
    paths = [tmp_path / f for f in files]
    assert all(p.exists() for p in paths)
    try:
        assert chattr("+i", *paths).returncode == 0
        reply = wait_for_status(sqlite_env, 503)
        if len(files) == 1:  # commits reach the WAL; copying it into the database file fails
            assert reply.json()["database"] == "not writable: disk I/O error (copying the WAL into the database file)"
        else:  # the commit itself fails
            assert reply.json()["database"] == "not writable: disk I/O error"
    finally:
        chattr("-i", *paths)
    wait_for_status(sqlite_env, 200)
    assert sqlite_env.event(sqlite_env.new_deal())[0] == 200  # and calls are stored again


def test_locked_database_gives_503_in_time_not_a_hung_probe(sqlite_env: RelayEnv, tmp_path: Path) -> None:
    wait_for_status(sqlite_env, 200)
    other = sqlite3.connect(tmp_path / "relay.db", isolation_level=None)  # e.g. the sqlite3 shell
    other.execute("BEGIN IMMEDIATE")
    try:
        time.sleep(CACHE_SECONDS + 0.1)
        started = time.monotonic()
        reply = healthz(sqlite_env)
        assert reply.status_code == 503 and time.monotonic() - started < TIMEOUT + 1
        assert reply.json()["database"] == f"timed out after {TIMEOUT:g} s: the database is locked, busy or unreachable"
    finally:
        other.execute("ROLLBACK")
        other.close()
    wait_for_status(sqlite_env, 200)


def test_deleted_database_gives_503_without_crashing(sqlite_env: RelayEnv, tmp_path: Path) -> None:
    wait_for_status(sqlite_env, 200)
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"relay.db{suffix}").unlink(missing_ok=True)
    reply = wait_for_status(sqlite_env, 503)
    assert reply.json() == {"status": "error", "database": "database file is gone (deleted or moved)"}


def test_postgres_read_only_gives_503_over_http(tmp_path: Path, postgres_url: str) -> None:
    env = start(tmp_path, database_url=postgres_url)
    name = postgres_url.rsplit("/", 1)[1]
    admin = create_engine(postgres_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")

    def read_only(on: bool) -> None:
        with admin.connect() as conn:
            setting = "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
            conn.execute(text(f'ALTER DATABASE "{name}" {setting}'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})

    try:
        wait_for_status(env, 200)
        read_only(True)
        reply = wait_for_status(env, 503)
        assert reply.json() == {"status": "error",
                                "database": "not writable: cannot execute INSERT in a read-only transaction"}
        read_only(False)
        wait_for_status(env, 200)
    finally:
        stop(env)
        admin.dispose()

