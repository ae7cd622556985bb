"""Scenario 3, burst: 1,000 requests released at once, the simulator running one job at
a time (as ComfyUI does) at 10 ms each.

The simulator alone needs about 10 s; the question is how much the gateway adds
on top. The simulator's own execution time is read from its history (the sum
of execution_start -> execution_success of every prompt), and `direct` runs the
same burst as the reference of what a client needs at the least.
"""

from __future__ import annotations

import time
from typing import Any

from ..load import LoadSpec, run_load
from ..processes import Gateway, Simulator
from ..report import ScenarioResult, Target
from ..stats import median
from . import POOL_FULL, Context, SimCost, execution_times, summarize

COUNT = 1000
JOB_MS = 10


def _burst(sim: Simulator, spec: LoadSpec, gw: Gateway | None = None) -> dict[str, Any]:
    cost = SimCost(sim)
    pool_full = gw.count_in_log(POOL_FULL) if gw else 0
    load = run_load(spec)
    pool_full = (gw.count_in_log(POOL_FULL) - pool_full) if gw else 0
    sim_cpu = cost.per_prompt_ms()
    history = execution_times(sim.history(spec.count + 100))
    ids = {r.prompt_id for r in load.ok}
    runs = [v for k, v in history.items() if k in ids]
    busy = sum(end - start for start, end in runs) / 1000
    last = max((r.end for r in load.ok), default=float("nan"))
    return {
        **summarize(load),
        "last_response_s": last - load.released_at,
        "sim_execution_s": busy,
        "sim_span_s": (max(e for _, e in runs) - min(s for s, _ in runs)) / 1000 if runs else 0,
        "sim_cpu_ms_per_prompt": sim_cpu,
        "pool_full_warnings": pool_full,
    }


def run(ctx: Context) -> ScenarioResult:
    started = time.monotonic()
    result = ScenarioResult(
        "burst",
        "3. Burst: 1,000 requests at once, one job at a time",
        f"Simulator: parallel 1, {JOB_MS} ms jobs; {COUNT} requests to `/api/generate` started "
        "together, one worker. `direct` runs the same burst over one WebSocket.",
    )
    sim = Simulator(parallel=1, job_duration_ms=str(JOB_MS)).start()
    gw = Gateway(sim.url, worker_connections=COUNT + 500, inflight=2).start()
    rounds = []
    try:
        for _ in range(ctx.rounds(2)):
            common: dict[str, Any] = {"mode": "burst", "count": COUNT, "max_seconds": 90}
            rounds.append(
                {
                    "gateway": _burst(
                        sim,
                        LoadSpec(
                            client="gateway",
                            gateway_url=gw.url,
                            endpoint="/api/generate",
                            body={"workflow": "bench_small"},
                            **common,
                        ),
                        gw,
                    ),
                    "direct": _burst(sim, LoadSpec(client="direct", comfy_url=sim.url, **common)),
                }
            )
        result.notes += [f"gateway log: {w}" for w in gw.warnings(skip=POOL_FULL)]
    finally:
        gw.stop()
        sim.stop()
    result.data["rounds"] = rounds

    def med(client: str, key: str) -> float:
        return median([r[client][key] for r in rounds])

    ratio = median(
        [r["gateway"]["last_response_s"] / r["gateway"]["sim_execution_s"] for r in rounds]
    )
    direct_ratio = median(
        [r["direct"]["last_response_s"] / r["direct"]["sim_execution_s"] for r in rounds]
    )
    for client in ("gateway", "direct"):
        result.row(f"{client}: last response after", med(client, "last_response_s"), "s")
        result.row(
            f"{client}: the simulator's own execution time",
            med(client, "sim_execution_s"),
            "s",
            f"span first start -> last end {med(client, 'sim_span_s'):.2f} s",
        )
        result.row(f"{client}: errors", sum(r[client]["errors"] for r in rounds))
        result.row(
            f"{client}: simulator CPU per prompt", med(client, "sim_cpu_ms_per_prompt"), "ms"
        )
    result.row(
        "gateway: upstream connections opened beyond the pool and discarded",
        med("gateway", "pool_full_warnings"),
        "",
        "urllib3 'Connection pool is full' warnings in the gateway's log",
    )
    result.row("gateway: last response / simulator's time", ratio, "x")
    result.row("direct: last response / simulator's time", direct_ratio, "x")
    result.targets.append(Target("last of 1,000 answered / simulator's own time", ratio, 1.3, "x"))
    result.seconds = time.monotonic() - started
    return result
