"""Scenario 1, overhead: the gateway's latency against a client talking to ComfyUI itself.

Simulator jobs of 20 ms (about a tiny graph on a real ComfyUI), enough parallel
slots that 32 concurrent requests never queue behind each other, so what is
left over `direct` is the gateway's own cost. Then instant jobs, to read the
added milliseconds alone. Each round runs every client once; the ratios are
taken within a round, and the table shows their median over rounds.
"""

from __future__ import annotations

import time
from typing import Any

from ..load import LoadSpec, run_load
from ..processes import BusyProcess, Gateway, Simulator
from ..report import ScenarioResult, Target
from ..stats import median
from . import Context, SimCost, summarize

BODY = {"workflow": "bench_small"}
GATEWAY = {
    "generate": {"endpoint": "/api/generate", "body": BODY},
    "generate_file": {"endpoint": "/api/generate_file", "body": BODY},
}
BASELINES = ("direct", "per_request_socket", "polling")


def _spec(client: str, sim: Simulator, gw: Gateway, concurrency: int, count: int) -> LoadSpec:
    options: dict[str, Any] = {}
    if client in GATEWAY:
        options = {"client": "gateway", "gateway_url": gw.url, **GATEWAY[client]}
    else:
        options = {"client": client, "comfy_url": sim.url}
    return LoadSpec(
        count=count, max_seconds=30, concurrency=concurrency, warmup=5, mode="closed", **options
    )


def _counts(ctx: Context, client: str, concurrency: int) -> int:
    if client == "polling":  # every request takes at least one 0.5 s poll
        return 10 if concurrency == 1 else 64
    if concurrency == 1:
        return 50 if ctx.quick else 80
    return 320 if ctx.quick else 640


def _one_round(ctx: Context, sim: Simulator, gw: Gateway) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    sim.configure(job_duration_ms=20)
    for concurrency in (1, 32):
        for client in ("direct", *GATEWAY, "per_request_socket", "polling"):
            cost = SimCost(sim)
            cpu0 = gw.cpu_seconds()
            result = run_load(
                _spec(client, sim, gw, concurrency, _counts(ctx, client, concurrency))
            )
            figures[f"{client}@c{concurrency}"] = {
                **summarize(result),
                "sim_cpu_ms_per_prompt": cost.per_prompt_ms(),
                "gateway_cpu_cores": (gw.cpu_seconds() - cpu0) / result.wall_s,
            }
    # The control: `direct` again, beside a process that only burns the CPU
    # the gateway used at c=32.
    with BusyProcess(figures["generate@c32"]["gateway_cpu_cores"]) as busy:
        result = run_load(_spec("direct", sim, gw, 32, _counts(ctx, "direct", 32)))
        figures["direct_beside_busy@c32"] = {**summarize(result), "busy_cores": busy.cores_used()}
    sim.configure(job_duration_ms=0)
    for client in ("direct", *GATEWAY):
        result = run_load(_spec(client, sim, gw, 1, 100 if ctx.quick else 200))
        figures[f"{client}@c1/instant"] = summarize(result)
    return figures


def run(ctx: Context) -> ScenarioResult:
    started = time.monotonic()
    result = ScenarioResult(
        "overhead",
        "1. Overhead: gateway latency against `direct`",
        "Simulator: 32 parallel slots, 20 ms jobs (then instant ones); graph EmptyImage 64x64 "
        "-> ImageInvert -> SaveImage (590 B PNG); one gevent worker. Closed loop: each of "
        "C clients sends its next request when the last one is answered.",
    )
    sim = Simulator(parallel=32, job_duration_ms="20").start()
    gw = Gateway(sim.url, inflight=32).start()
    rounds = []
    try:
        for _ in range(ctx.rounds(3)):
            rounds.append(_one_round(ctx, sim, gw))
    finally:
        gw.stop()
        sim.stop()
    result.data["rounds"] = rounds

    def med(key: str, field: str = "p50_ms") -> float:
        return median([r[key][field] for r in rounds])

    def ratio(key: str, ref: str = "") -> float:
        ref = ref or "direct@" + key.split("@", 1)[1]  # direct in the same setting
        return median([r[key]["p50_ms"] / r[ref]["p50_ms"] for r in rounds])

    def added(key: str) -> float:
        return median(
            [r[f"{key}@c1/instant"]["p50_ms"] - r["direct@c1/instant"]["p50_ms"] for r in rounds]
        )

    for c in (1, 32):
        for client in ("direct", *GATEWAY, "per_request_socket", "polling"):
            key = f"{client}@c{c}"
            note = f"p99 {med(key, 'p99_ms'):.1f} ms, {med(key, 'per_s'):.0f}/s"
            if client != "direct":
                note += f", {ratio(key):.2f}x direct"
            errors = sum(r[key]["errors"] for r in rounds)
            if errors:
                note += f", {errors} errors"
            result.row(f"{client}, concurrency {c}, 20 ms jobs: p50", med(key), "ms", note)
    for client in ("direct", *GATEWAY):
        key = f"{client}@c1/instant"
        note = "" if client == "direct" else f"+{added(client):.2f} ms over direct"
        result.row(f"{client}, concurrency 1, instant jobs: p50", med(key), "ms", note)
    result.row(
        "gateway worker's CPU, generate at concurrency 32",
        med("generate@c32", "gateway_cpu_cores"),
        "cores",
    )
    result.row(
        "direct, concurrency 32, beside a process burning that much CPU: p50",
        med("direct_beside_busy@c32"),
        "ms",
        f"{ratio('direct_beside_busy@c32', 'direct@c32'):.2f}x direct; it got "
        f"{med('direct_beside_busy@c32', 'busy_cores'):.2f} cores. What that much CPU "
        "costs on this machine, whoever uses it",
    )
    sim_cpu = median([r["direct@c32"]["sim_cpu_ms_per_prompt"] for r in rounds])
    result.row("simulator CPU per prompt (direct, c=32)", sim_cpu, "ms")
    result.row(
        "load generator CPU per request (gateway generate, c=32)",
        med("generate@c32", "load_cpu_ms_per_request"),
        "ms",
    )

    for endpoint in GATEWAY:
        result.targets += [
            Target(f"{endpoint} p50 / direct p50, c=1, 20 ms", ratio(f"{endpoint}@c1"), 1.15, "x"),
            Target(f"{endpoint} p50 / direct p50, c=32, 20 ms", ratio(f"{endpoint}@c32"), 1.3, "x"),
            Target(f"{endpoint} added p50, instant jobs", added(endpoint), 2.0, "ms"),
        ]
        for c in (1, 32):
            best_other = min(
                ratio(f"per_request_socket@c{c}", f"{endpoint}@c{c}"),
                ratio(f"polling@c{c}", f"{endpoint}@c{c}"),
            )
            result.targets.append(
                Target(
                    f"{endpoint} faster than per-request-socket and polling, c={c}",
                    best_other,
                    1.0,
                    "x (closer baseline p50 / gateway p50)",
                    op=">",
                )
            )
    result.seconds = time.monotonic() - started
    return result
