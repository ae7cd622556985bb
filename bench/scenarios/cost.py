"""Scenario 4, cost and throughput: gateway CPU per generation, generations per second.

CPU is read from /proc/<worker>/stat (utime + stime) before and after a run, so
the simulator and the load generator sharing the two cores do not blur it.
Jobs are instant, so everything measured is overhead: the gateway's, the
simulator's and the load generator's, each from its own process accounting.
"""

from __future__ import annotations

import time
from typing import Any

from ..load import LoadSpec, run_load
from ..processes import Gateway, Simulator, disk_create_us
from ..report import ScenarioResult, Target
from ..stats import median, percentile
from . import Context, SimCost, summarize

BODY = {"workflow": "bench_small"}
SATURATION_CONCURRENCY = 64


def _cpu_run(
    sim: Simulator, gw: Gateway, endpoint: str, concurrency: int, count: int
) -> dict[str, Any]:
    cost = SimCost(sim)
    cpu0 = gw.cpu_seconds()
    load = run_load(
        LoadSpec(
            client="gateway",
            gateway_url=gw.url,
            endpoint=endpoint,
            body=BODY,
            concurrency=concurrency,
            count=count,
            max_seconds=20,
            warmup=5,
        )
    )
    cpu = gw.cpu_seconds() - cpu0
    return {
        **summarize(load),
        "gateway_cpu_ms_per_generation": 1000 * cpu / max(1, len(load.ok)),
        "gateway_cpu_cores": cpu / load.wall_s if load.wall_s else float("nan"),
        "sim_cpu_ms_per_prompt": cost.per_prompt_ms(),
    }


def _direct_run(sim: Simulator, concurrency: int, count: int) -> dict[str, Any]:
    cost = SimCost(sim)
    load = run_load(
        LoadSpec(
            client="direct",
            comfy_url=sim.url,
            concurrency=concurrency,
            count=count,
            max_seconds=20,
            warmup=5,
        )
    )
    return {**summarize(load), "sim_cpu_ms_per_prompt": cost.per_prompt_ms()}


def run(ctx: Context) -> ScenarioResult:
    started = time.monotonic()
    result = ScenarioResult(
        "cost",
        "4. Cost and throughput",
        "Instant jobs, small PNG (590 B), local storage (in RAM). CPU per generation: closed "
        f"loop of 8 clients. Saturation: closed loop of {SATURATION_CONCURRENCY} clients, "
        f"simulator with {SATURATION_CONCURRENCY} parallel slots, with one and with two workers; "
        "`direct` at the same concurrency shows what the simulator and the load generator allow.",
    )
    count = 400 if ctx.quick else 1000
    sat_count = 1500 if ctx.quick else 3000
    sim = Simulator(parallel=SATURATION_CONCURRENCY, job_duration_ms="0").start()
    rounds: list[dict[str, Any]] = []
    try:
        for workers in (1, 2):
            gw = Gateway(sim.url, workers=workers, inflight=SATURATION_CONCURRENCY).start()
            try:
                for i in range(ctx.rounds(2)):
                    if len(rounds) <= i:
                        rounds.append({})
                    figures = rounds[i]
                    if workers == 1:
                        figures["cpu_generate"] = _cpu_run(sim, gw, "/api/generate", 8, count)
                        figures["cpu_generate_file"] = _cpu_run(
                            sim, gw, "/api/generate_file", 8, count
                        )
                        figures["direct_saturation"] = _direct_run(
                            sim, SATURATION_CONCURRENCY, sat_count
                        )
                    if workers == 1 and i == 0:
                        # Same, outputs copied from ComfyUI's disk instead of /view.
                        disk = Gateway(
                            sim.url,
                            extra_env={"COMFYUI_OUTPUT_DIR": sim.output_dir},
                            inflight=SATURATION_CONCURRENCY,
                        )
                        disk.start()
                        try:
                            figures["cpu_generate_disk"] = _cpu_run(
                                sim, disk, "/api/generate", 8, count
                            )
                        finally:
                            disk.stop()
                    figures[f"saturation_{workers}w"] = _cpu_run(
                        sim, gw, "/api/generate", SATURATION_CONCURRENCY, sat_count
                    )
            finally:
                gw.stop()
    finally:
        sim.stop()
    result.data["rounds"] = rounds

    def med(key: str, field: str) -> float:
        return median([r[key][field] for r in rounds])

    cpu = med("cpu_generate", "gateway_cpu_ms_per_generation")
    result.row("gateway CPU per generation, /api/generate", cpu, "ms")
    result.row(
        "gateway CPU per generation, /api/generate_file",
        med("cpu_generate_file", "gateway_cpu_ms_per_generation"),
        "ms",
    )
    disk_cpu = rounds[0]["cpu_generate_disk"]["gateway_cpu_ms_per_generation"]
    result.row(
        "gateway CPU per generation, /api/generate, COMFYUI_OUTPUT_DIR set",
        disk_cpu,
        "ms",
        "outputs copied from ComfyUI's disk, no /view call (first round only)",
    )
    # The gateway's OUTPUT_DIR was in RAM; this is what a disk adds per output.
    disk = disk_create_us()
    result.data["disk_create_us"] = disk
    result.row(
        "creating one 590 B file on this machine's disk (temp folder), p50",
        percentile(disk, 50),
        "us",
        f"p90 {percentile(disk, 90):.0f} us; the gateway writes one per output, and its "
        "OUTPUT_DIR was in RAM for these figures (see bench/processes.py)",
    )
    for workers in (1, 2):
        key = f"saturation_{workers}w"
        result.row(
            f"saturation, {workers} worker(s): generations/s",
            med(key, "per_s"),
            "/s",
            f"p50 {med(key, 'p50_ms'):.0f} ms; workers use {med(key, 'gateway_cpu_cores'):.2f} "
            f"cores at {med(key, 'gateway_cpu_ms_per_generation'):.2f} ms/generation; "
            f"simulator {med(key, 'sim_cpu_ms_per_prompt'):.2f} ms/prompt; "
            f"load generator {med(key, 'load_cpu_ms_per_request'):.2f} ms/request; "
            f"{sum(r[key]['errors'] for r in rounds)} errors",
        )
    result.row(
        f"direct at concurrency {SATURATION_CONCURRENCY}: generations/s",
        med("direct_saturation", "per_s"),
        "/s",
        f"simulator {med('direct_saturation', 'sim_cpu_ms_per_prompt'):.2f} ms/prompt",
    )
    result.targets.append(Target("gateway CPU per generation (/api/generate)", cpu, 2.0, "ms"))
    result.seconds = time.monotonic() - started
    return result
