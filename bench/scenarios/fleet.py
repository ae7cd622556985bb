"""Scenario 12, the fleet: several ComfyUI servers behind one gateway, and many instances.

- Throughput with N = 1, 2, 4 simulators (200 ms jobs, one at a time each,
  COMFYUI_MAX_INFLIGHT=1): runs/s over the servers' busy span, against N x the
  one-server figure, and the time from a server freeing up to its next job
  starting (from each simulator's own job log, while runs wait in the queue).
- Routing quality: servers of 100 / 200 / 400 ms per job; the time to finish
  every run against the ideal schedule (equal jobs on machines of different
  speeds: giving each job to the machine that would finish it first is optimal).
- Failover: a server killed (SIGKILL) with one prompt executing and one
  waiting in its own queue (max_inflight=2 on it); time from the kill to each
  one starting on another server, and runs lost.
- Scale on paper: the router's decision over 100 servers, in process; Redis
  commands per run with two instances over one Redis and four servers.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from ..processes import ROOT, Gateway, Simulator, cpu_seconds
from ..report import ScenarioResult, Target
from ..stats import percentile
from . import Context
from .runs import _wait_all

JOB_MS = 200
BODY = {"workflow": "bench_small"}


def _post(urls: list[str], count: int) -> list[str]:
    """`count` runs posted at once over the gateways in turn; their ids."""

    def one(i: int) -> str:
        response = requests.post(f"{urls[i % len(urls)]}/api/run", json=BODY, timeout=60)
        response.raise_for_status()
        return response.json()["run_id"]

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(count)))


def _failed(records: dict[str, dict[str, Any]], count: int) -> int:
    """Runs that did not succeed, the ones never seen finishing included."""
    return sum(1 for r in records.values() if r["status"] != "success") + count - len(records)


def _fleet(sims: list[Simulator], options: dict[int, str] | None = None) -> str:
    options = options or {}
    return ",".join(f"s{i}={s.url}{options.get(i, '')}" for i, s in enumerate(sims))


def _gaps_ms(sims: list[Simulator]) -> list[float]:
    """Per server, the time between one job's end and the next one's start."""
    gaps = []
    for sim in sims:
        jobs = sorted(sim.jobs(), key=lambda j: j["started"])
        gaps += [(b["started"] - a["ended"]) * 1000 for a, b in zip(jobs, jobs[1:], strict=False)]
    return gaps


def _busy_span(sims: list[Simulator]) -> tuple[float, int]:
    jobs = [j for s in sims for j in s.jobs()]
    if not jobs:
        return float("nan"), 0
    return max(j["ended"] for j in jobs) - min(j["started"] for j in jobs), len(jobs)


def _throughput(n: int, count: int, redis_url: str = "") -> dict[str, Any]:
    sims = [Simulator(1, str(JOB_MS), job_log=True).start() for _ in range(n)]
    env = {"COMFYUI_URLS": _fleet(sims), "MAX_QUEUED_RUNS": "0"}
    instances = 1
    if redis_url:
        import redis

        with redis.Redis.from_url(redis_url) as client:
            client.flushdb()
            client.config_resetstat()
        env["REDIS_URL"] = redis_url
        instances = 2
    gateways = [Gateway("", workers=2, inflight=1, extra_env=env) for _ in range(instances)]
    try:
        for gateway in gateways:
            gateway.start()
        cpu_before = sum(g.cpu_seconds() for g in gateways)
        run_ids = _post([g.url for g in gateways], count)
        records = _wait_all(gateways[0], run_ids, timeout=count * JOB_MS / 1000 + 120)
        cpu = sum(g.cpu_seconds() for g in gateways) - cpu_before
        span, jobs = _busy_span(sims)
        gaps = _gaps_ms(sims)
        per_server = [len(s.jobs()) for s in sims]
        commands = 0
        if redis_url:
            import redis

            with redis.Redis.from_url(redis_url) as client:
                stats = client.info("commandstats")
            commands = sum(v["calls"] for k, v in stats.items() if k != "cmdstat_config")
    finally:
        for gateway in gateways:
            gateway.stop()
        for sim in sims:
            sim.stop()
    failed = _failed(records, count)
    return {
        "servers": n,
        "instances": instances,
        "runs": count,
        "jobs": jobs,
        "failed": failed,
        "per_s": jobs / span if span else float("nan"),
        "per_server": per_server,
        "gap_mean_ms": statistics.fmean(gaps) if gaps else float("nan"),
        "gap_p50_ms": percentile(gaps, 50),
        "gap_p99_ms": percentile(gaps, 99),
        "gateway_cpu_ms_per_run": 1000 * cpu / max(1, count),
        "redis_commands_per_run": commands / count if redis_url else None,
    }


def ideal_makespan(job_seconds: list[float], count: int) -> float:
    """The shortest time `count` equal jobs take on machines of these speeds."""
    loads = [0] * len(job_seconds)
    for _ in range(count):
        best = min(range(len(loads)), key=lambda i: (loads[i] + 1) * job_seconds[i])
        loads[best] += 1
    return max(n * t for n, t in zip(loads, job_seconds, strict=True))


def _routing(count: int) -> dict[str, Any]:
    speeds = [100, 200, 400]
    sims = [Simulator(1, str(ms), job_log=True).start() for ms in speeds]
    env = {"COMFYUI_URLS": _fleet(sims), "MAX_QUEUED_RUNS": "0"}
    gateway = Gateway("", workers=2, inflight=1, extra_env=env)
    try:
        gateway.start()
        run_ids = _post([gateway.url], count)
        records = _wait_all(gateway, run_ids, timeout=count * 0.4 + 120)
        span, _ = _busy_span(sims)
        per_server = [len(s.jobs()) for s in sims]
    finally:
        gateway.stop()
        for sim in sims:
            sim.stop()
    ideal = ideal_makespan([ms / 1000 for ms in speeds], count)
    failed = _failed(records, count)
    return {
        "runs": count,
        "span_s": span,
        "ideal_s": ideal,
        "ratio": span / ideal,
        "per_server": per_server,
        "failed": failed,
    }


def _failover_once(grace: float) -> dict[str, Any]:
    sims = [Simulator(1, str(JOB_MS), job_log=True).start() for _ in range(3)]
    victim = sims[1]
    env = {
        # Two prompts on the victim: one executing, one waiting in its own queue.
        "COMFYUI_URLS": _fleet(sims, {1: ";max_inflight=2"}),
        "FAILOVER_GRACE": str(grace),
        "MAX_QUEUED_RUNS": "0",
    }
    gateway = Gateway("", workers=2, inflight=1, extra_env=env)
    try:
        gateway.start()
        run_ids = _post([gateway.url], 60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stats = victim.stats()
            if len(victim.jobs()) >= 3 and stats["queue_running"] and stats["queue_pending"]:
                break
            time.sleep(0.01)
        killed = time.time()
        victim.kill9()
        records = _wait_all(gateway, run_ids, timeout=120)
        starts = {j["prompt_id"]: j["started"] for s in sims if s is not victim for j in s.jobs()}
    finally:
        gateway.stop()
        for sim in sims:
            sim.stop()
    moved = [r for r in records.values() if r["attempts"] > 1 and r["prompt_id"] in starts]
    delays = sorted((starts[r["prompt_id"]] - killed) * 1000 for r in moved)
    lost = _failed(records, 60)
    return {"moved_ms": delays, "lost": lost}


def _scale(servers: int, instances: int, count: int, redis_url: str) -> dict[str, Any]:
    """`servers` simulated servers in one process (instant jobs) behind `instances`
    gateways (one worker each) over one Redis."""
    import redis

    workdir = tempfile.mkdtemp(prefix="bench-many-")
    ready = os.path.join(workdir, "ready.json")
    log = open(os.path.join(workdir, "many.log"), "wb")  # noqa: SIM115
    many = subprocess.Popen(
        [sys.executable, "-m", "comfysync.simulator.many", "--count", str(servers)]
        + ["--ready-file", ready],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    gateways: list[Gateway] = []
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(ready) and many.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        with open(ready, encoding="utf-8") as handle:
            urls = json.load(handle)
        with redis.Redis.from_url(redis_url) as client:
            client.flushdb()
        env = {
            "COMFYUI_URLS": ",".join(f"s{i}={u}" for i, u in enumerate(urls)),
            "REDIS_URL": redis_url,
            "MAX_QUEUED_RUNS": "0",
            "OUTPUT_DIR": os.path.join(workdir, "outputs"),
        }
        for _ in range(instances):
            gateways.append(Gateway("", workers=1, inflight=1, extra_env=env).start())
        with redis.Redis.from_url(redis_url) as client:
            client.config_resetstat()
            before = client.info("cpu")
        cpu_before = [g.cpu_seconds() for g in gateways]
        sim_before = cpu_seconds(many.pid)
        began = time.monotonic()
        run_ids = _post([g.url for g in gateways], count)
        records = _wait_all(gateways[0], run_ids, timeout=600)
        wall = time.monotonic() - began
        with redis.Redis.from_url(redis_url) as client:
            stats = client.info("commandstats")
            after = client.info("cpu")
        commands = sum(v["calls"] for k, v in stats.items() if k != "cmdstat_config")
        gateway_cpu = sum(g.cpu_seconds() - c for g, c in zip(gateways, cpu_before, strict=True))
        sim_cpu = cpu_seconds(many.pid) - sim_before
    finally:
        for gateway in gateways:
            gateway.stop()
        many.terminate()
        many.wait(30)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
    redis_cpu = sum(after[k] - before[k] for k in ("used_cpu_sys", "used_cpu_user"))
    failed = _failed(records, count)
    return {
        "servers": servers,
        "instances": instances,
        "runs": count,
        "failed": failed,
        "per_s": count / wall,
        "redis_commands_per_run": commands / count,
        "cpu_ms_per_run": {
            "gateways": 1000 * gateway_cpu / count,
            "simulators": 1000 * sim_cpu / count,
            "redis": 1000 * redis_cpu / count,
        },
    }


def _decision_us(servers: int = 100, rounds: int = 20000) -> list[float]:
    """The router's ranking over `servers` backends with mixed load, in microseconds."""
    from comfysync.comfy.backend import ComfyBackend
    from comfysync.comfy.client import ComfyClient
    from comfysync.comfy.watcher import ComfyWatcher
    from comfysync.routing import ranked

    rng = random.Random(7)
    backends = []
    for i in range(servers):
        client = ComfyClient(f"http://127.0.0.1:9/s{i}")
        backend = ComfyBackend(
            client,
            ComfyWatcher(client),
            None,
            name=f"s{i}",
            limit=2,  # type: ignore[arg-type]
        )
        backend.claimed = rng.randint(0, 2)
        backend.job_done(rng.uniform(0.1, 0.4), "w", frozenset({f"m{i % 5}.safetensors"}))
        backends.append(backend)
    models = frozenset({"m3.safetensors"})
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        ranked(backends, None, workflow="w", models=models)
        times.append((time.perf_counter() - began) * 1e6)
    return times


def run(ctx: Context) -> ScenarioResult:
    from ..runstore import redis_server

    started = time.monotonic()
    per_server = 60 if ctx.quick else 150
    result = ScenarioResult(
        "fleet",
        "12. Fleet: many servers, routing, failover",
        f"Simulators with one slot each; COMFYUI_MAX_INFLIGHT=1; gateway with 2 workers; "
        f"runs posted at once to /api/run ({per_server} per server). Throughput = jobs / the "
        "servers' busy span, from each simulator's job log; gap = a server's job end to its "
        "next job start.",
    )
    scaling = {n: _throughput(n, per_server * n) for n in (1, 2, 4)}
    one = scaling[1]["per_s"]
    for n, figures in scaling.items():
        result.row(
            f"N={n}: runs/s (per server)",
            f"{figures['per_s']:.2f} ({figures['per_server']})",
            note=f"{figures['per_s'] / (n * one):.3f} x N x one server; failed {figures['failed']}",
        )
        result.row(
            f"N={n}: free-to-next-job gap mean / p99",
            f"{figures['gap_mean_ms']:.1f} / {figures['gap_p99_ms']:.1f}",
            "ms",
        )
        result.row(f"N={n}: gateway CPU per run", figures["gateway_cpu_ms_per_run"], "ms")
    for n in (2, 4):
        result.targets.append(
            Target(f"N={n} throughput vs N x one", scaling[n]["per_s"] / (n * one), 0.95, op=">=")
        )
    gaps = [scaling[n]["gap_mean_ms"] for n in (1, 2, 4)]
    result.targets.append(Target("free-to-next-job gap mean (worst N)", max(gaps), 5, "ms"))

    routing = _routing(120 if ctx.quick else 300)
    result.row(
        "routing 100/200/400 ms: span / ideal",
        f"{routing['span_s']:.2f} / {routing['ideal_s']:.2f} s",
        note=f"jobs per server {routing['per_server']}",
    )
    result.targets.append(Target("routing span / ideal", routing["ratio"], 1.10))

    rounds = [_failover_once(grace=1.0) for _ in range(ctx.rounds(5, 2))]
    moved = [d for r in rounds for d in r["moved_ms"]]
    queued_moves = [r["moved_ms"][0] for r in rounds if r["moved_ms"]]
    lost = sum(r["lost"] for r in rounds)
    result.row(
        "failover: kill to first moved run starting p50 / p99",
        f"{percentile(queued_moves, 50):.0f} / {percentile(queued_moves, 99):.0f}",
        "ms",
        note="the prompt that waited in the dead server's queue",
    )
    result.row(
        "failover: kill to every moved run starting p50 / p99",
        f"{percentile(moved, 50):.0f} / {percentile(moved, 99):.0f}",
        "ms",
        note="includes the executing one, after FAILOVER_GRACE=1 s",
    )
    result.row("failover: runs moved / lost", f"{len(moved)} / {lost}")
    result.targets.append(Target("failover runs lost", lost, 0, op="=="))

    decisions = _decision_us()
    result.row(
        "router decision over 100 servers p50 / p99",
        f"{percentile(decisions, 50):.0f} / {percentile(decisions, 99):.0f}",
        "µs",
    )
    result.targets.append(
        Target("router decision p99 (100 servers)", percentile(decisions, 99) / 1000, 1, "ms")
    )
    with redis_server() as url:
        if url is None:
            result.notes.append("redis-server not found: Redis commands per run not measured.")
        else:
            shared = _throughput(4, per_server * 4, url)
            scaling["redis"] = shared
            result.row(
                "Redis, 2 instances x 2 workers, N=4: runs/s",
                f"{shared['per_s']:.2f}",
                note=f"failed {shared['failed']}",
            )
            result.row("Redis commands per run", shared["redis_commands_per_run"])
            scale = _scale(100, 10, 1000 if ctx.quick else 3000, url)
            scaling["scale"] = scale
            cpu = scale["cpu_ms_per_run"]
            result.row(
                "100 servers (one process) x 10 instances: runs/s",
                f"{scale['per_s']:.1f}",
                note=f"failed {scale['failed']}; instant jobs",
            )
            result.row("  Redis commands per run", scale["redis_commands_per_run"])
            result.row(
                "  CPU per run: gateways / simulators / Redis",
                f"{cpu['gateways']:.1f} / {cpu['simulators']:.1f} / {cpu['redis']:.2f}",
                "ms",
            )
    result.data.update(
        scaling={str(k): v for k, v in scaling.items()},
        routing=routing,
        failover=rounds,
        decision_us_p99=percentile(decisions, 99),
    )
    result.seconds = time.monotonic() - started
    return result
