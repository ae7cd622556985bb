"""Scenario 2, held requests: N concurrent waits in ONE gevent worker.

The simulator runs every job at once, each lasting 5-10 s, so all N requests
are held together. Measured: errors, the worker's peak RSS, the WebSockets
the simulator accepted, and how long after the simulator finished a job its
client had the answer (the simulator's `execution_success` timestamp against
the client's receive time: same machine, same clock). The history is read
only after the run, so measuring adds no load.
"""

from __future__ import annotations

import time
from typing import Any

from ..load import LoadResult, LoadSpec, run_load
from ..processes import Gateway, Simulator
from ..report import ScenarioResult, Target
from ..stats import percentile
from . import POOL_FULL, Context, PeakRss, SimCost, execution_times, summarize

JOB_MS = (5000, 10000)


def _lags(sim: Simulator, load: LoadResult, n: int) -> tuple[list[float], list[int]]:
    """Per request: client receive time minus the simulator's execution_success (ms)."""
    history = execution_times(sim.history(n + 100))
    lags, starts = [], []
    for record in load.ok:
        stamps = history.get(record.prompt_id)
        if stamps:
            starts.append(stamps[0])
            lags.append(record.end * 1000 - stamps[1])
    return lags, starts


def _direct(sim: Simulator, n: int) -> dict[str, Any]:
    """The same N held over one WebSocket by the reference client: the floor of the lag."""
    spec = LoadSpec(client="direct", comfy_url=sim.url, mode="burst", count=n, max_seconds=120)
    load = run_load(spec)
    lags, _ = _lags(sim, load, n)
    return {
        **summarize(load),
        "completion_to_response_p50_ms": percentile(lags, 50),
        "completion_to_response_p99_ms": percentile(lags, 99),
        "completion_to_response_max_ms": max(lags, default=float("nan")),
    }


def _held(sim: Simulator, n: int) -> dict[str, Any]:
    accepted_before = sim.stats()["ws_accepted_total"]
    gw = Gateway(
        sim.url,
        worker_connections=n + 500,
        backlog=8192,
        inflight=n,
        extra_env={"MAX_QUEUED_RUNS": "0"},  # 5,000 arrive at once
    ).start()
    try:
        rss = PeakRss(gw)
        cost = SimCost(sim)
        cpu0 = gw.cpu_seconds()
        spec = LoadSpec(
            client="gateway",
            gateway_url=gw.url,
            endpoint="/api/generate",
            body={"workflow": "bench_small"},
            mode="burst",
            count=n,
            max_seconds=120,
        )
        load = run_load(spec, on_tick=rss.tick)
        worker_cpu = gw.cpu_seconds() - cpu0
        peak = rss.peak_mb()
        sim_stats = sim.stats()
        status = gw.status()["servers"][0]
        pool_full = gw.count_in_log(POOL_FULL)
        warnings = gw.warnings(skip=POOL_FULL)
    finally:
        gw.stop()
    lags, starts = _lags(sim, load, n)
    return {
        **summarize(load),
        "peak_rss_mb": peak,
        "hwm_reset": rss.hwm_reset,
        "ws_accepted_by_simulator": sim_stats["ws_accepted_total"] - accepted_before,
        "ws_open_at_end": sim_stats["ws_open"],
        "worker_ws_connections": status["connections"],
        "completion_to_response_p50_ms": percentile(lags, 50),
        "completion_to_response_p99_ms": percentile(lags, 99),
        "completion_to_response_max_ms": max(lags, default=float("nan")),
        "matched_in_history": len(lags),
        # From the release of the burst to the simulator starting the last job:
        # how long the gateway took to submit all N.
        "submit_spread_s": (max(starts) / 1000 - load.released_at) if starts else float("nan"),
        "worker_cpu_ms_per_request": 1000 * worker_cpu / max(1, n),
        "sim_cpu_ms_per_prompt": cost.per_prompt_ms(),
        "pool_full_warnings": pool_full,
        "gateway_warnings": warnings,
    }


def run(ctx: Context) -> ScenarioResult:
    started = time.monotonic()
    sizes = (1000,) if ctx.quick else (1000, 5000)
    result = ScenarioResult(
        "held",
        "2. Held requests in one gevent worker",
        f"Simulator runs every job in parallel, each {JOB_MS[0] // 1000}-{JOB_MS[1] // 1000} s "
        "(uniform); N requests to `/api/generate` released at once; ONE worker "
        "(WORKER_CONNECTIONS=N+500, `--backlog 8192`). A fresh gateway per N. One run per N.",
    )
    sim = Simulator(parallel=max(sizes), job_duration_ms="5000-10000").start()
    try:
        for n in sizes:
            sim.configure(parallel=n, job_duration_ms=list(JOB_MS))
            result.data[str(n)] = figures = _held(sim, n)
            figures["direct"] = reference = _direct(sim, n)
            lag = (
                f"p50 {figures['completion_to_response_p50_ms']:.1f} ms, "
                f"max {figures['completion_to_response_max_ms']:.0f} ms"
            )
            result.row(f"N={n}: errors", figures["errors"], "", figures["first_error"][:120])
            result.row(f"N={n}: worker peak RSS", figures["peak_rss_mb"], "MB")
            result.row(
                f"N={n}: WebSockets the simulator accepted",
                figures["ws_accepted_by_simulator"],
                "",
                f"worker's own count {figures['worker_ws_connections']}",
            )
            result.row(
                f"N={n}: simulator done -> client has response, p99",
                figures["completion_to_response_p99_ms"],
                "ms",
                lag,
            )
            result.row(
                f"N={n}: same, `direct` over one WebSocket (the floor), p99",
                reference["completion_to_response_p99_ms"],
                "ms",
                f"p50 {reference['completion_to_response_p50_ms']:.1f} ms, "
                f"{reference['errors']} errors",
            )
            result.row(
                f"N={n}: time to submit all N (release -> last job started)",
                figures["submit_spread_s"],
                "s",
            )
            result.row(
                f"N={n}: request latency p50 / max",
                f"{figures['p50_ms'] / 1000:.2f} / {figures['max_ms'] / 1000:.2f}",
                "s",
                "jobs last 5-10 s",
            )
            result.row(
                f"N={n}: upstream connections opened beyond the pool and discarded",
                figures["pool_full_warnings"],
            )
            for warning in figures["gateway_warnings"]:
                result.notes.append(f"N={n}, gateway log: {warning}")
            result.row(f"N={n}: worker CPU per request", figures["worker_cpu_ms_per_request"], "ms")
            result.row(f"N={n}: simulator CPU per prompt", figures["sim_cpu_ms_per_prompt"], "ms")
    finally:
        sim.stop()
    big = result.data[str(max(sizes))]
    label = f"N={max(sizes)}"
    result.targets += [
        Target(f"{label}: errors", big["errors"], 0),
        Target(f"{label}: worker peak RSS", big["peak_rss_mb"], 300, "MB"),
        Target(f"{label}: WebSockets per worker", big["ws_accepted_by_simulator"], 1, op="=="),
        Target(
            f"{label}: completion -> response p99", big["completion_to_response_p99_ms"], 50, "ms"
        ),
    ]
    if ctx.quick:
        result.notes.append("--quick: N=1,000 only; the 5,000 target needs the full run.")
    result.seconds = time.monotonic() - started
    return result
