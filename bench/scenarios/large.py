"""Scenario 5, a large output through `/api/generate_file`: time, and the worker's RSS growth.

A flat EmptyImage compresses to almost nothing, so the graph is the simulator's
stand-in SD chain at 2584x2584: its VAEDecode yields colour noise, which PNG
cannot compress, so the saved file is ~20 MB (its real size is in the table).
After one warm-up (which fills the simulator's node cache, as a repeated seed
does on a real ComfyUI), every run re-encodes and saves the 20 MB PNG.
"""

from __future__ import annotations

import time
from typing import Any

from ..load import LoadSpec, run_load
from ..processes import Gateway, Simulator
from ..report import ScenarioResult, Target
from ..stats import median
from . import Context, PeakRss, SimCost

WORKFLOW = "bench_large"


def _once(sim: Simulator, gw: Gateway) -> dict[str, Any]:
    rss = PeakRss(gw)
    cost = SimCost(sim)
    gateway = run_load(
        LoadSpec(
            client="gateway",
            gateway_url=gw.url,
            endpoint="/api/generate_file",
            body={"workflow": WORKFLOW},
            count=1,
            max_seconds=60,
        ),
        on_tick=rss.tick,
        tick_seconds=0.01,
    )
    growth = rss.growth_mb()
    direct = run_load(
        LoadSpec(client="direct", comfy_url=sim.url, workflow=WORKFLOW, count=1, max_seconds=60)
    )
    record, reference = gateway.records[0], direct.records[0]
    return {
        "ok": record.ok and reference.ok,
        "error": record.error or reference.error,
        "bytes": record.size,
        "gateway_s": record.end - record.start,
        "direct_s": reference.end - reference.start,
        "rss_growth_mb": growth,
        "hwm_reset": rss.hwm_reset,
        "sim_cpu_ms_per_prompt": cost.per_prompt_ms(),
    }


def run(ctx: Context) -> ScenarioResult:
    started = time.monotonic()
    result = ScenarioResult(
        "large",
        "5. A large output through /api/generate_file",
        "Stand-in SD graph at 2584x2584 (noise, so the PNG stays ~20 MB); instant jobs; one "
        "worker, local storage. RSS growth = the worker's peak RSS during the request (VmHWM "
        "reset through /proc/<pid>/clear_refs, plus polling VmRSS every 10 ms) minus its RSS "
        "before. `direct` fetches the same output from /view itself.",
    )
    sim = Simulator(parallel=1, job_duration_ms="0").start()
    gw = Gateway(sim.url, inflight=2).start()
    try:
        warm = run_load(
            LoadSpec(
                client="gateway",
                gateway_url=gw.url,
                endpoint="/api/generate_file",
                body={"workflow": WORKFLOW},
                count=1,
                max_seconds=120,
            )
        )
        if warm.errors:
            raise RuntimeError(f"the large graph failed: {warm.errors[0].error}")
        runs = [_once(sim, gw) for _ in range(ctx.rounds(3, 2))]
    finally:
        gw.stop()
        sim.stop()
    result.data["runs"] = runs
    size_mb = median([r["bytes"] for r in runs]) / 1e6
    growth = median([r["rss_growth_mb"] for r in runs])
    ratio = median([r["gateway_s"] / r["direct_s"] for r in runs])
    result.row("output size", size_mb, "MB", f"{int(median([r['bytes'] for r in runs])):,} bytes")
    result.row("gateway /api/generate_file", median([r["gateway_s"] for r in runs]), "s")
    result.row("direct (WebSocket + /view)", median([r["direct_s"] for r in runs]), "s")
    result.row("gateway / direct", ratio, "x")
    result.row(
        "worker peak RSS growth",
        growth,
        "MB",
        f"runs: {[round(r['rss_growth_mb'], 1) for r in runs]}",
    )
    result.row("errors", sum(not r["ok"] for r in runs))
    result.targets.append(Target(f"RSS growth for a {size_mb:.0f} MB image", growth, 10, "MB"))
    result.seconds = time.monotonic() - started
    return result
