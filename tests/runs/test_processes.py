"""The contract across processes: wake-ups from another process, and races between processes."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time

import gevent

from comfysync.runs import QUEUED, RUNNING, RunRecord, RunStore

from .conftest import peer


def _ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == "ready", f"peer said {line!r}"


def _go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def _finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    return out


def test_wait_for_change_wakes_on_an_update_in_another_process(
    store: RunStore, store_spec: tuple[str, str]
) -> None:
    run, _ = store.create(RunRecord.new({}))
    rounds = 20
    other = peer(*store_spec, "update", run.id, str(rounds))
    try:
        _ready(other)
        assert other.stdout is not None
        latencies = []
        for i in range(rounds):
            _go(other)
            started = time.monotonic()
            assert store.wait_for_change(run.id, timeout=5)
            woke = time.time()
            assert time.monotonic() - started < 2
            sent = float(other.stdout.readline())
            latencies.append(woke - sent)
            assert store.get(run.id).progress == {"current": i}  # type: ignore[union-attr]
    finally:
        _finish(other)
    median = statistics.median(latencies) * 1000
    print(
        f"\n{store_spec[0]}: wake-up across processes, from the other's update call: "
        f"median {median:.2f} ms, max {max(latencies) * 1000:.2f} ms over {rounds}"
    )
    assert median < 100


def test_wait_for_work_wakes_when_another_process_requeues(
    store: RunStore, store_spec: tuple[str, str]
) -> None:
    run, _ = store.create(RunRecord.new({}))
    store.claim("s", "o", limit=1, prompt_id="p", client_id="c")
    store.update(run.id, status=RUNNING)
    other = peer(*store_spec, "queue", "s")
    try:
        _ready(other)
        _go(other)
        started = time.monotonic()
        assert store.wait_for_work(timeout=5)
        assert time.monotonic() - started < 2
    finally:
        _finish(other)
    assert store.claim("s", "o", limit=1, prompt_id="p2", client_id="c") is not None


def test_processes_claiming_at_once_never_share_a_run(
    store: RunStore, store_spec: tuple[str, str]
) -> None:
    made = {store.create(RunRecord.new({"i": i}))[0].id for i in range(200)}
    claimers = [peer(*store_spec, "claim", f"server-{n}") for n in range(4)]
    try:
        for proc in claimers:
            _ready(proc)
        for proc in claimers:
            _go(proc)
    finally:
        taken = [json.loads(_finish(proc).splitlines()[-1]) for proc in claimers]
    every = [run_id for ids in taken for run_id in ids]
    assert len(every) == len(set(every)), "a run was claimed twice"
    assert set(every) == made
    assert store.queued_count() == 0
    assert sum(store.in_flight(f"server-{n}") for n in range(4)) == 200


def test_two_adopters_never_both_get_one_run(store: RunStore, store_spec: tuple[str, str]) -> None:
    orphans = set()
    for i in range(100):
        run, _ = store.create(RunRecord.new({"i": i}))
        store.update(run.id, status=RUNNING, owner="dead-worker")
        orphans.add(run.id)
    adopters = [peer(*store_spec, "adopt", name) for name in ("adopter-a", "adopter-b")]
    try:
        for proc in adopters:
            _ready(proc)
        for proc in adopters:
            _go(proc)
    finally:
        got = [set(json.loads(_finish(proc).splitlines()[-1])) for proc in adopters]
    assert not got[0] & got[1]
    assert got[0] | got[1] == orphans
    owners = {store.get(run_id).owner for run_id in orphans}  # type: ignore[union-attr]
    assert owners <= {"adopter-a", "adopter-b"}


def test_many_greenlets_at_once_under_gevent(store_spec: tuple[str, str]) -> None:
    count = 300
    proc = peer(*store_spec, "greenlets", str(count))
    try:
        _ready(proc)
        _go(proc)
    finally:
        report = json.loads(_finish(proc).splitlines()[-1])
    assert report == {
        "claimed": count,
        "distinct": count,
        "statuses": ["success"],
        "contested_winners": 1,
        "woken": 20,
        "queued_left": 0,
    }


def test_a_forked_worker_gets_connections_of_its_own(store: RunStore) -> None:
    run, _ = store.create(RunRecord.new({}))  # connected, listening, before the fork
    pid = os.fork()
    if pid == 0:  # the child, as a gunicorn worker forked after the store was opened
        code = 1
        try:
            changed = store.update(run.id, expect={QUEUED}, status=RUNNING)
            code = 0 if changed is not None and store.get(run.id) == changed else 2
            store.close()
        finally:
            os._exit(code)
    started = time.monotonic()
    woken = store.wait_for_change(run.id, timeout=10)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert woken and time.monotonic() - started < 5
    # The parent's own connection and wake-ups still work after the child is gone.
    assert store.get(run.id).status == RUNNING  # type: ignore[union-attr]
    gevent.spawn_later(0.05, store.update, run.id, progress={"current": 1})
    assert store.wait_for_change(run.id, timeout=5)
