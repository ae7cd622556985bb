"""Scenario 6, the async path: `POST /api/run` at c=32, and how soon a finished prompt
shows as `success` in its record.

Every run is accepted at once (201) and waits in the gateway's queue; the
dispatcher hands 32 at a time to a simulator with 32 slots. "Finish to
success" is the record's `ended_at` minus the simulator's own
`execution_success` timestamp (both on this machine's clock): the copy of the
output, the record's writes and the wake-ups in between.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import requests

from ..load import LoadSpec, run_load
from ..processes import Gateway, Simulator
from ..report import ScenarioResult, Target
from ..stats import percentile
from . import Context, SimCost, execution_times, summarize

CONCURRENCY = 32


def _wait_all(gw: Gateway, run_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Each run's record once it has ended."""
    records: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        for run_id in run_ids:
            while time.monotonic() < deadline:
                body = session.get(f"{gw.url}/api/status/{run_id}", timeout=10).json()
                if body["status"] in ("success", "failed", "cancelled"):
                    records[run_id] = body
                    break
                time.sleep(0.05)
    return records


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def run(ctx: Context) -> ScenarioResult:
    started = time.monotonic()
    count = 500 if ctx.quick else 2000
    result = ScenarioResult(
        "runs",
        "6. The async path: POST /api/run",
        f"{count} runs posted by {CONCURRENCY} clients in a closed loop; simulator with "
        f"{CONCURRENCY} slots, 20 ms jobs; COMFYUI_MAX_INFLIGHT={CONCURRENCY}, one worker, "
        "runs in SQLite on disk. Finish to success = record ended_at - the simulator's "
        "execution_success timestamp.",
    )
    sim = Simulator(parallel=CONCURRENCY, job_duration_ms="20").start()
    gw = Gateway(sim.url, inflight=CONCURRENCY, extra_env={"MAX_QUEUED_RUNS": "0"}).start()
    try:
        cost = SimCost(sim)
        cpu_before = gw.cpu_seconds()
        first = time.time()
        accepted = run_load(
            LoadSpec(
                client="gateway",
                gateway_url=gw.url,
                endpoint="/api/run",
                body={"workflow": "bench_small"},
                count=count,
                concurrency=CONCURRENCY,
                max_seconds=300,
            )
        )
        run_ids = [r.prompt_id for r in accepted.ok]
        records = _wait_all(gw, run_ids, timeout=300)
        gateway_cpu = gw.cpu_seconds() - cpu_before
        history = sim.history(count + 100)
        sim_ms = cost.per_prompt_ms()
    finally:
        gw.stop()
        sim.stop()
    finished = execution_times(history)
    lags = [
        (_epoch(body["ended_at"]) - finished[body["prompt_id"]][1] / 1000) * 1000
        for body in records.values()
        if body["status"] == "success" and body["prompt_id"] in finished
    ]
    ended = [_epoch(b["ended_at"]) for b in records.values() if b["ended_at"]]
    drained = len(ended) / (max(ended) - first) if ended else float("nan")
    summary = summarize(accepted)
    failed = sum(b["status"] != "success" for b in records.values())
    result.data.update(accept=summary, lags_ms=sorted(lags)[-20:], failed=failed)
    result.row("POST /api/run p50", summary["p50_ms"], "ms")
    result.row("POST /api/run p99", summary["p99_ms"], "ms")
    result.row("runs accepted", summary["per_s"], "/s")
    result.row("runs completed (first accept to last success)", drained, "/s")
    result.row("finish to success p50", percentile(lags, 50), "ms")
    result.row("finish to success p99", percentile(lags, 99), "ms")
    result.row("gateway CPU per run", 1000 * gateway_cpu / max(1, len(records)), "ms")
    result.row("simulator CPU per prompt", sim_ms, "ms")
    result.row("errors (accept) / runs not succeeded", f"{summary['errors']} / {failed}")
    result.targets.append(Target("finish to success p99", percentile(lags, 99), 50, "ms"))
    result.seconds = time.monotonic() - started
    return result
