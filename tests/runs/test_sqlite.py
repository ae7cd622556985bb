"""What only the SQLite backend promises: locks waited on cooperatively, WAL, schema, the bus."""

from __future__ import annotations

import os
import socket
import sqlite3
import time

import gevent
import pytest

from comfysync.runs import (
    DISPATCHING,
    QUEUED,
    RUNNING,
    Claim,
    RunRecord,
    RunStoreUnavailable,
    SqliteRunStore,
)
from comfysync.runs.bus import EVERYTHING, MAX_SOCKET_PATH, bus_folder
from comfysync.runs.sqlite import SCHEMA_VERSION


@pytest.fixture
def path(tmp_path) -> str:
    return str(tmp_path / "runs.sqlite3")


def _ticker(ticks: list[float]) -> gevent.Greenlet:
    def tick() -> None:
        while True:
            gevent.sleep(0.005)
            ticks.append(time.monotonic())

    return gevent.spawn(tick)


def test_a_locked_file_is_waited_for_without_stopping_other_greenlets(path: str) -> None:
    store = SqliteRunStore(path)
    run, _ = store.create(RunRecord.new({}))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    gevent.spawn_later(0.3, other.execute, "ROLLBACK")
    ticks: list[float] = []
    ticker = _ticker(ticks)
    started = time.monotonic()
    try:
        changed = store.update(run.id, status=RUNNING)
    finally:
        ticker.kill()
        other.close()
        store.close()
    waited = time.monotonic() - started
    assert changed is not None and changed.status == RUNNING
    assert 0.28 <= waited < 2
    # The loop kept turning while the update waited: ~60 ticks of 5 ms, not one.
    assert len(ticks) > 20


def test_a_lock_held_too_long_fails_with_a_clear_error(path: str) -> None:
    store = SqliteRunStore(path, busy_timeout=0.3)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    try:
        with pytest.raises(RunStoreUnavailable, match="locked for 0.3 s") as caught:
            store.create(RunRecord.new({}))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert 0.3 <= time.monotonic() - started < 1.5
    assert caught.value.code == 503
    # Reads do not wait for a writer (WAL), and the store works once the lock is gone.
    assert store.queued_count() == 0
    assert store.create(RunRecord.new({}))[1]
    store.close()


def test_opening_waits_while_another_process_is_creating_the_file(path: str) -> None:
    # Two gunicorn workers opening a new store at once: while the first turns
    # the new file to WAL, the second cannot even read its header.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    other.execute("CREATE TABLE half_made (x)")
    gevent.spawn_later(0.3, other.execute, "ROLLBACK")
    started = time.monotonic()
    try:
        store = SqliteRunStore(path)
    finally:
        other.close()
    assert time.monotonic() - started >= 0.28
    assert store.create(RunRecord.new({}))[1]
    assert store.queued_count() == 1
    store.close()


def test_wal_schema_version_and_parent_folders(tmp_path) -> None:
    path = str(tmp_path / "a" / "b" / "runs.sqlite3")
    SqliteRunStore(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(RuntimeError, match="schema 99"):
        SqliteRunStore(path)


def test_runs_survive_a_reopen(path: str) -> None:
    store = SqliteRunStore(path)
    run, _ = store.create(RunRecord.new({"keep": True}))
    store.close()
    again = SqliteRunStore(path)
    assert again.get(run.id) == run
    assert again.create(RunRecord.new({}))[0].seq == run.seq + 1
    again.close()


def test_the_bus_lives_beside_the_database_or_in_a_short_temp_folder(tmp_path) -> None:
    short = str(tmp_path / "runs.sqlite3")
    assert bus_folder(short) == short + ".bus"
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    long_path = str(deep / "runs.sqlite3")
    folder = bus_folder(long_path)
    assert not folder.startswith(str(deep))
    assert folder == bus_folder(long_path)  # the same for every process
    store = SqliteRunStore(long_path)
    try:
        (name,) = os.listdir(folder)
        assert len(os.path.join(folder, name)) <= MAX_SOCKET_PATH
    finally:
        store.close()
    assert os.listdir(folder) == []


def test_a_dead_process_socket_is_removed(path: str) -> None:
    store = SqliteRunStore(path)
    stale = os.path.join(bus_folder(path), "1-deadbeef0000.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(stale)
    dead.close()  # the file stays, as after kill -9
    time.sleep(0.01)
    try:
        store.create(RunRecord.new({}))
        assert not os.path.exists(stale)
    finally:
        store.close()


def test_a_congested_peer_gets_every_change_later(path: str) -> None:
    store = SqliteRunStore(path)
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    slow.bind(os.path.join(bus_folder(path), "2-0123456789ab.sock"))
    try:
        time.sleep(0.01)
        ids = {store.create(RunRecord.new({}))[0].id for _ in range(60)}
        heard: set[str] = set()
        slow.setblocking(False)
        deadline = time.monotonic() + 3
        while not ids <= heard and EVERYTHING not in heard and time.monotonic() < deadline:
            try:
                heard.update(slow.recv(1 << 20).decode().split("\n"))
            except BlockingIOError:
                gevent.sleep(0.002)  # the store's retry greenlet runs meanwhile
        assert ids <= heard or EVERYTHING in heard
    finally:
        slow.close()
        store.close()


def _offer(limit: int = 0) -> Claim:
    return Claim("gpu", "me", limit, "p-new", "c-1")


def test_a_run_that_need_not_wait_is_created_claimed(path: str) -> None:
    store = SqliteRunStore(path)
    run, new = store.create(RunRecord.new({}), claim=_offer())
    assert new and run.status == DISPATCHING
    assert (run.server, run.owner, run.prompt_id, run.client_id) == ("gpu", "me", "p-new", "c-1")
    assert [a["prompt_id"] for a in run.attempts] == ["p-new"]
    assert store.get(run.id) == run
    assert store.claim("gpu", "x", limit=0, prompt_id="p", client_id="c") is None
    store.close()


def test_a_new_run_is_queued_behind_others_or_past_the_limit(path: str) -> None:
    store = SqliteRunStore(path)
    first, _ = store.create(RunRecord.new({}), claim=_offer(limit=1))
    assert first.status == DISPATCHING
    full, _ = store.create(RunRecord.new({}), claim=_offer(limit=1))
    assert full.status == QUEUED  # the server has no room
    behind, _ = store.create(RunRecord.new({}), claim=_offer())
    assert behind.status == QUEUED  # `full` was queued first, at the same priority
    urgent, _ = store.create(RunRecord.new({}, priority=5), claim=_offer())
    assert urgent.status == DISPATCHING  # nothing queued at its priority or above
    store.close()


def test_a_retry_waiting_for_its_backoff_does_not_hold_new_runs(path: str) -> None:
    store = SqliteRunStore(path)
    store.create(RunRecord.new({}, not_before=time.time() + 60))
    run, _ = store.create(RunRecord.new({}), claim=_offer())
    assert run.status == DISPATCHING
    store.close()
