"""`python -m bench.runstore [--runs N] [--concurrency C]`: the run store's own costs.

Runs go through the whole life cycle (create queued -> claim -> submitted ->
running -> uploading -> success) from C greenlets of one gevent process, each
yielding between steps as a request waiting on ComfyUI would. A greenlet that
sleeps 1 ms in a loop measures the event loop's lag meanwhile: how long the
store kept every other request of the worker from running.

SQLite is measured with its checkpoints moved to a pool thread (the default)
and with SQLite's own automatic checkpoints, which run inside a commit on the
event loop; Redis when a redis-server is on PATH or in the venv (a throwaway
one on a free port).
"""

from __future__ import annotations

if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import gevent  # noqa: E402
from gevent.socket import wait_read  # noqa: E402

from comfysync.runs import (  # noqa: E402
    RUNNING,
    SUBMITTED,
    SUCCESS,
    UPLOADING,
    RunRecord,
    RunStore,
    SqliteRunStore,
)
from comfysync.simulator.fleet import redis_binary  # noqa: E402

from .stats import percentile  # noqa: E402

# A request body and graph of a realistic size (~1.5 kB of JSON with the record).
REQUEST = {"workflow": "bench_small", "params": {"prompt": "a lighthouse at dusk", "seed": 7}}
GRAPH = {
    str(n): {"class_type": "Node", "inputs": {"value": n, "text": "x" * 40}} for n in range(10)
}
# Writes of one life cycle: create, claim and four updates.
WRITES_PER_RUN = 6


@dataclass
class Result:
    backend: str
    concurrency: int
    runs: int
    seconds: float
    cpu_seconds: float  # this process's user + system time, every thread
    lags_ms: list[float]
    note: str = ""

    @property
    def per_s(self) -> float:
        return self.runs / self.seconds


class _Ready:
    """A file descriptor that is always readable: waiting on it is a wait for I/O.

    Requests move from step to step on socket events, so the loop polls (and
    fires timers) between steps. `gevent.sleep(0)` would not model that: gevent
    runs chains of such callbacks for up to 50 at a time before it polls, so
    the 1 ms probe measured the chain (10 ms with one greenlet), not the store.
    """

    def __init__(self) -> None:
        self.reader, self.writer = socket.socketpair()
        self.writer.send(b"x")

    def wait(self) -> None:
        wait_read(self.reader.fileno())


_ready = _Ready()


def life_cycle(store: RunStore, i: int) -> None:
    """One run from acceptance to success, waiting for I/O between steps like a request."""
    store.create(RunRecord.new(REQUEST, graph=GRAPH))
    _ready.wait()
    run = store.claim(f"s{i % 2}", "bench", limit=0, prompt_id=f"p{i}", client_id="c")
    assert run is not None
    for status in (SUBMITTED, RUNNING, UPLOADING):
        _ready.wait()
        store.update(run.id, status=status)
    _ready.wait()
    store.update(run.id, expect={UPLOADING}, status=SUCCESS, ended_at=time.time())


def measure(backend: str, store: RunStore, runs: int, concurrency: int, note: str = "") -> Result:
    """Drive `runs` life cycles through `store` from `concurrency` greenlets."""
    lags: list[float] = []
    stop = False

    def lag_probe() -> None:
        while not stop:
            started = time.perf_counter()
            gevent.sleep(0.001)
            lags.append((time.perf_counter() - started - 0.001) * 1000)

    counter = iter(range(runs))

    def worker() -> None:
        for i in counter:
            life_cycle(store, i)

    for i in range(min(200, runs)):  # warm up: statement caches, scripts loaded
        life_cycle(store, i)
    probe = gevent.spawn(lag_probe)
    gevent.sleep(0.01)
    started, cpu = time.perf_counter(), time.process_time()
    gevent.joinall([gevent.spawn(worker) for _ in range(concurrency)], raise_error=True)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    stop = True
    probe.join(timeout=1)
    return Result(backend, concurrency, runs, seconds, cpu, lags, note)


def wal_pages_per_run(folder: str, runs: int = 500) -> tuple[float, int]:
    """WAL pages (and bytes) one life cycle writes, with checkpoints held off."""
    path = os.path.join(folder, "wal.sqlite3")
    store = SqliteRunStore(path, checkpoint_interval=3600)
    try:
        for i in range(runs):
            life_cycle(store, i)
        page = store._db().execute("PRAGMA page_size").fetchone()[0]
        size = os.path.getsize(path + "-wal")
    finally:
        store.close()
    return size / (page + 24) / runs, page


@contextmanager
def redis_server() -> Iterator[str | None]:
    """The URL of a throwaway redis-server, or None when there is none to start."""
    binary = redis_binary()
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [binary, "--port", str(port), "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args + ["--bind", "127.0.0.1"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def table(results: list[Result]) -> str:
    lines = [
        f"Full life cycle ({WRITES_PER_RUN} store writes per run) in one gevent process.",
        "",
        "| backend | greenlets | runs | runs/s | writes/s | CPU ms/run | lag p50 ms | p99 ms "
        "| max ms | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r.backend} | {r.concurrency} | {r.runs} | {r.per_s:,.0f} "
            f"| {r.per_s * WRITES_PER_RUN:,.0f} | {1000 * r.cpu_seconds / r.runs:.2f} "
            f"| {percentile(r.lags_ms, 50):.2f} "
            f"| {percentile(r.lags_ms, 99):.2f} | {max(r.lags_ms, default=float('nan')):.2f} "
            f"| {r.note} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.runstore", description=__doc__)
    parser.add_argument("--runs", type=int, default=3000, help="life cycles per measurement")
    parser.add_argument(
        "--concurrency", default="1,8,32", help="greenlets at once, comma-separated"
    )
    parser.add_argument("--no-redis", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]

    sqlite_configs: list[tuple[Callable[[str], RunStore], str]] = [
        (SqliteRunStore, "checkpoints in a pool thread every 1 s (default)"),
        (
            lambda p: SqliteRunStore(p, checkpoint_interval=0),
            "SQLite's own checkpoints, inside a commit",
        ),
    ]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-runstore-") as folder:
        for concurrency in levels:
            for n, (make, note) in enumerate(sqlite_configs):
                store = make(os.path.join(folder, f"runs-{concurrency}-{n}.sqlite3"))
                try:
                    results.append(measure("sqlite", store, args.runs, concurrency, note))
                finally:
                    store.close()
        pages, page_size = wal_pages_per_run(folder)
    if not args.no_redis:
        with redis_server() as url:
            if url is None:
                print("redis-server not found: Redis not measured", file=sys.stderr)
            else:
                from comfysync.runs.redis import RedisRunStore

                for concurrency in levels:
                    store = RedisRunStore(url)
                    try:
                        results.append(
                            measure("redis", store, args.runs, concurrency, "local server")
                        )
                    finally:
                        store.close()
    print(table(results))
    print(
        f"\nSQLite WAL per run: {pages:.1f} pages of {page_size} B "
        f"({pages * (page_size + 24) / 1024:.0f} kB) for {WRITES_PER_RUN} transactions; "
        f"Redis: {WRITES_PER_RUN} scripts (round trips)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
