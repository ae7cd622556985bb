"""Scenario 11, events across processes: a run's stream on a process other than the one
that dispatches it and hears ComfyUI's frames.

Two gateway instances (one worker each) share one run store: a SQLite file
in a shared DATA_DIR (the processes of one host, woken through the store's
datagram bus: the same path as two workers of one gunicorn) or one Redis
(REDIS_URL, pub/sub). Runs go to the instances in turn; for each run a
stream is opened on BOTH, so every run is seen once by the process that
owns it (same process: the reference) and once by the other (across). The
owner is read from the store afterwards.

The simulator runs one job at a time and three runs are outstanding, so each
run waits in the queue while its streams attach and its `started` is live.
Latency = the client's receive time of `started` minus its `data.at`
(ComfyUI's execution_start, epoch ms; same machine clock). "Across minus
same" compares the two streams of one run: when `started` (and `succeeded`)
reached the other process's client later than the owner's.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from typing import Any

from ..processes import Gateway, Simulator
from ..report import ScenarioResult, Target
from ..sse_client import StreamClient, StreamRecord, StreamSpec
from ..stats import percentile
from . import Context

JOB_MS = 150
LOOPS = 3  # runs outstanding at once: each waits ~2 jobs in the queue
BODY = {"workflow": "bench_small"}
REDIS_PREFIX = "comfysync:"  # RedisRunStore's default


def _owners_sqlite(path: str, run_ids: list[str]) -> dict[str, str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        return {
            run_id: owner
            for run_id in run_ids
            for (owner,) in db.execute("SELECT owner FROM runs WHERE id = ?", (run_id,))
            if owner
        }


def _owners_redis(url: str, run_ids: list[str]) -> dict[str, str]:
    import redis

    with redis.Redis.from_url(url) as client:
        pipe = client.pipeline(transaction=False)  # one HGET per run, in one round trip
        for run_id in run_ids:
            pipe.hget(f"{REDIS_PREFIX}run:{run_id}", "owner")
        found = pipe.execute()
    return {r: json.loads(v) for r, v in zip(run_ids, found, strict=True) if v}


def _owner_pid(owner: str) -> int:
    """`host:pid:token` (the dispatcher's owner id) -> pid."""
    return int(owner.rsplit(":", 2)[-2])


def _lag_ms(record: StreamRecord, kind: str = "started") -> float | None:
    event = record.first(kind)
    if event is None or event[3] is None:
        return None
    at = event[3] / 1000
    if at <= record.head_at:
        return None  # it began before this stream was attached: a replay
    return (event[2] - at) * 1000


def _measure(backend: str, count: int, redis_url: str = "") -> dict[str, Any]:
    sim = Simulator(parallel=1, job_duration_ms=str(JOB_MS)).start()
    shared = ""
    env = {"MAX_QUEUED_RUNS": "0"}
    if backend == "sqlite":
        shared = tempfile.mkdtemp(prefix="bench-data-shared-")
        env["DATA_DIR"] = shared
    else:
        import redis

        with redis.Redis.from_url(redis_url) as client:
            client.flushdb()
        env["REDIS_URL"] = redis_url
    gateways: list[Gateway] = []
    try:
        for _ in range(2):
            gateways.append(Gateway(sim.url, extra_env=env).start())
        urls = [g.url for g in gateways]
        warm = StreamSpec("pairs", urls, count=6, max_seconds=60, concurrency=2, body=BODY)
        StreamClient(warm).run()
        spec = StreamSpec(
            "pairs",
            urls,
            count=count,
            max_seconds=count * JOB_MS / 1000 * 3 + 60,
            concurrency=LOOPS,
            body=BODY,
        )
        result = StreamClient(spec).run()
        run_ids = sorted({s.run_id for s in result.streams})
        if backend == "sqlite":
            owners = _owners_sqlite(os.path.join(shared, "runs.sqlite3"), run_ids)
        else:
            owners = _owners_redis(redis_url, run_ids)
        pids = [set(g.worker_pids) for g in gateways]
        warnings = [w for g in gateways for w in g.warnings()]
    finally:
        for gateway in gateways:
            gateway.stop()
        sim.stop()
        if shared:
            shutil.rmtree(shared, ignore_errors=True)
    by_run: dict[str, dict[str, StreamRecord]] = {}
    unknown_owner = 0
    for record in result.streams:
        owner = owners.get(record.run_id)
        if owner is None:
            unknown_owner += 1
            continue
        side = "same" if _owner_pid(owner) in pids[record.gateway] else "across"
        by_run.setdefault(record.run_id, {})[side] = record
    lags: dict[str, list[float]] = {"same": [], "across": []}
    replays = {"same": 0, "across": 0}
    started_gap, succeeded_gap = [], []
    for sides in by_run.values():
        for side, record in sides.items():
            lag = _lag_ms(record)
            if lag is None:
                replays[side] += 1
            else:
                lags[side].append(lag)
        if len(sides) == 2 and _lag_ms(sides["same"]) is not None:
            same, across = sides["same"], sides["across"]
            a, b = same.first("started"), across.first("started")
            if a and b:
                started_gap.append((b[2] - a[2]) * 1000)
            a, b = same.first("succeeded"), across.first("succeeded")
            if a and b:
                succeeded_gap.append((b[2] - a[2]) * 1000)
    dispatched = [sum(1 for o in owners.values() if _owner_pid(o) in p) for p in pids]
    errors = [s.error for s in result.streams if s.error] + result.post_errors
    return {
        "runs": len(run_ids),
        "streams": len(result.streams),
        "errors": len(errors),
        "first_error": errors[0][:200] if errors else "",
        "unknown_owner": unknown_owner,
        "dispatched_by_instance": dispatched,
        "replayed": replays,
        "measured": {k: len(v) for k, v in lags.items()},
        **{
            f"{side}_{name}_ms": percentile(values, q)
            for side, values in lags.items()
            for name, q in (("p50", 50), ("p90", 90), ("p99", 99))
        },
        "same_max_ms": max(lags["same"], default=float("nan")),
        "across_max_ms": max(lags["across"], default=float("nan")),
        "started_gap_p50_ms": percentile(started_gap, 50),
        "started_gap_p99_ms": percentile(started_gap, 99),
        "succeeded_gap_p50_ms": percentile(succeeded_gap, 50),
        "succeeded_gap_p99_ms": percentile(succeeded_gap, 99),
        "client_cpu_s": result.cpu_s,
        "gateway_warnings": warnings[:5],
    }


def run(ctx: Context) -> ScenarioResult:
    from ..runstore import redis_server

    started = time.monotonic()
    count = 150 if ctx.quick else 600
    result = ScenarioResult(
        "crossworker",
        "11. Events across processes: SQLite and Redis",
        f"Two gateway instances (one worker each) on one run store; {count} runs posted to "
        f"them in turn by {LOOPS} loops, each run streamed on both instances. Simulator: one "
        f"slot, {JOB_MS} ms jobs, so every run waits in the queue while its streams attach. "
        "SQLite: one DATA_DIR on disk, wake-ups over the store's datagram bus; Redis: one "
        "REDIS_URL. Latency = receive time of `started` - its `data.at` (ComfyUI's "
        "execution_start); same = the stream on the process that dispatched the run.",
    )
    backends: dict[str, dict[str, Any]] = {"sqlite": _measure("sqlite", count)}
    with redis_server() as url:
        if url is None:
            result.notes.append("redis-server not found (PATH or the venv): Redis not measured.")
        else:
            backends["redis"] = _measure("redis", count, url)
    result.data.update(backends)
    for name, f in backends.items():
        label = "SQLite" if name == "sqlite" else "Redis"
        result.row(
            f"{label}: runs / streams / errors",
            f"{f['runs']} / {f['streams']} / {f['errors']}",
            "",
            f"dispatched by instance: {f['dispatched_by_instance']}; "
            f"live starts measured same {f['measured']['same']}, across "
            f"{f['measured']['across']} (replayed {f['replayed']['same']} / "
            f"{f['replayed']['across']})",
        )
        if f["first_error"]:
            result.notes.append(f"{label}, first error: {f['first_error']}")
        for side, words in (("same", "same process"), ("across", "across processes")):
            result.row(
                f"{label}: `started` latency, {words}, p50",
                f[f"{side}_p50_ms"],
                "ms",
                f"p90 {f[f'{side}_p90_ms']:.1f} ms, max {f[f'{side}_max_ms']:.0f} ms",
            )
            result.row(f"{label}: `started` latency, {words}, p99", f[f"{side}_p99_ms"], "ms")
        result.row(
            f"{label}: across minus same, one run's `started` p50 / p99",
            f"{f['started_gap_p50_ms']:.1f} / {f['started_gap_p99_ms']:.1f}",
            "ms",
        )
        result.row(
            f"{label}: across minus same, one run's `succeeded` p50 / p99",
            f"{f['succeeded_gap_p50_ms']:.1f} / {f['succeeded_gap_p99_ms']:.1f}",
            "ms",
        )
        for warning in f["gateway_warnings"]:
            result.notes.append(f"{label}, gateway log: {warning}")
        result.targets += [
            Target(
                f"{label}: `started` latency across processes p99", f["across_p99_ms"], 50, "ms"
            ),
            Target(f"{label}: stream errors", f["errors"], 0),
        ]
    result.seconds = time.monotonic() - started
    return result
