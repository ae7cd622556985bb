"""Another process on the same run store, driven by the contract suite over its stdin and stdout.

`python -m tests.runs.peer KIND TARGET COMMAND ARGS...`; it prints `ready` once
the store is open, then each command waits for a `go` line before it acts:

- `update RUN_ID N`: N times, on `go`: print the time, then update the run's progress.
- `queue SERVER`: on `go`: print the time, then move the run in flight back to queued.
- `claim SERVER`: on `go`: claim (limit 0) until the queue is empty; print the ids (JSON).
- `adopt OWNER`: on `go`: adopt; print the ids (JSON).
- `greenlets N`: under gevent's monkey-patching, on `go`: N greenlets each create a run and
  drive it to success, all racing for one compare-and-set, while 20 others wait for a
  change; print a JSON report.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and sys.argv[3:4] == ["greenlets"]:
    from gevent import monkey

    monkey.patch_all()

import json  # noqa: E402
import time  # noqa: E402

from comfysync.runs import (  # noqa: E402
    QUEUED,
    RUNNING,
    SUBMITTED,
    SUCCESS,
    UPLOADING,
    RunRecord,
    RunStore,
)

from .conftest import open_store  # noqa: E402


def say(value: object) -> None:
    print(value if isinstance(value, str) else json.dumps(value), flush=True)


def go() -> None:
    line = sys.stdin.readline()
    if line.strip() != "go":
        raise SystemExit(f"expected go, got {line!r}")


def update(store: RunStore, run_id: str, count: int) -> None:
    for i in range(count):
        go()
        say(repr(time.time()))
        store.update(run_id, progress={"current": i})


def requeue(store: RunStore, server: str) -> None:
    go()
    runs, _ = store.list_runs(status=RUNNING, limit=1)
    say(repr(time.time()))
    store.update(runs[0].id, expect={RUNNING}, status=QUEUED)


def claim(store: RunStore, server: str) -> None:
    go()
    taken = []
    while True:
        run = store.claim(server, f"claimer-{server}", limit=0, prompt_id="p", client_id="c")
        if run is None:
            break
        taken.append(run.id)
    say(taken)


def adopt(store: RunStore, owner: str) -> None:
    store.heartbeat(owner, ttl=30)  # an adopter is alive, as a gateway worker would be
    go()
    say([run.id for run in store.adopt(owner)])


def greenlets(store: RunStore, count: int) -> None:
    """Runs created and driven through their life cycle by `count` greenlets at once."""
    import gevent

    go()
    contested, _ = store.create(RunRecord.new({"contested": True}, status=SUBMITTED))
    winners: list[int] = []
    woken: list[bool] = []

    def life(i: int) -> str:
        run, _ = store.create(RunRecord.new({"i": i}, priority=i % 3))
        gevent.sleep(0)
        if store.update(contested.id, expect={SUBMITTED}, status=RUNNING):
            winners.append(i)
        claimed = store.claim(f"s{i % 4}", f"o{i}", limit=0, prompt_id=str(i), client_id="c")
        assert claimed is not None
        for status in (RUNNING, UPLOADING):
            gevent.sleep(0)
            store.update(claimed.id, status=status)
        store.update(claimed.id, status=SUCCESS, ended_at=time.time())
        return claimed.id

    def watcher(run_id: str) -> None:
        woken.append(store.wait_for_change(run_id, 5.0))

    probe, _ = store.create(RunRecord.new({"probe": True}, status=RUNNING))
    watchers = [gevent.spawn(watcher, probe.id) for _ in range(20)]
    gevent.sleep(0)
    jobs = [gevent.spawn(life, i) for i in range(count)]
    gevent.joinall(jobs, timeout=30, raise_error=True)
    store.update(probe.id, progress={"done": True})
    gevent.joinall(watchers, timeout=10)
    ids = [job.value for job in jobs]
    statuses = [store.get(run_id).status for run_id in ids]  # type: ignore[union-attr]
    say(
        {
            "claimed": len(ids),
            "distinct": len(set(ids) - {None}),
            "statuses": sorted(set(statuses)),
            "contested_winners": len(winners),
            "woken": woken.count(True),
            "queued_left": store.queued_count(),
        }
    )


def main(argv: list[str]) -> None:
    kind, target, command, *args = argv
    store = open_store(kind, target)
    try:
        say("ready")
        if command == "update":
            update(store, args[0], int(args[1]))
        elif command == "queue":
            requeue(store, args[0])
        elif command == "claim":
            claim(store, args[0])
        elif command == "adopt":
            adopt(store, args[0])
        elif command == "greenlets":
            greenlets(store, int(args[0]))
        else:
            raise SystemExit(f"unknown command {command}")
    finally:
        store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
