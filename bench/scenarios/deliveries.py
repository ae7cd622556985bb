"""Scenario 10, webhook deliveries: K deliveries to a receiver that answers each in 200 ms,
and what a full outbox costs the generations served beside it.

The receiver is its own asyncio process (`bench.receiver`): it checks every
signature and answers 204 after 200 ms however many wait, so it never limits
what is measured. K async runs with `"webhook"` set make the K deliveries
(one `run.succeeded` each), posted in cycles (below), each as fast as the
gateway takes them; the sender works through its outbox at
WEBHOOK_CONCURRENCY (default 16) attempts at a time: at most 16 / 0.2 s = 80
deliveries/s.

Generation throughput: sync `/api/generate`, closed loop of 16 clients, instant
jobs, one worker, in short slices. The runs come in P cycles of K/P: post
them and wait for them to end, then a B slice while their deliveries are
under way (the outbox not yet empty at its end), then wait for the outbox to
empty, then a D slice with nothing to deliver. B and D of one cycle follow
the same history within seconds, so the drift of a shared machine cancels
out; the ratio is the median of B / D over the cycles. A1, before any run,
is shown for reference.

Last, a diagnostic: the worker's CPU with the outbox full while the
receiver holds every answer (the sender's slots all waiting), against idle.
"""

from __future__ import annotations

import base64
import bisect
import os
import random
import time
from typing import Any

import requests

from ..load import LoadSpec, run_load
from ..processes import Gateway, Simulator
from ..receiver import Receiver
from ..report import ScenarioResult, Target
from ..stats import median
from . import Context, summarize

BODY = {"workflow": "bench_small"}
GEN_CONCURRENCY = 16
ANSWER_MS = 200
POST_CONCURRENCY = 32


def _generate(gw: Gateway, count: int) -> dict[str, Any]:
    cpu0 = gw.cpu_seconds()
    load = run_load(
        LoadSpec(
            client="gateway",
            gateway_url=gw.url,
            endpoint="/api/generate",
            body=BODY,
            concurrency=GEN_CONCURRENCY,
            count=count,
            warmup=5,
            max_seconds=120,
        )
    )
    cpu = gw.cpu_seconds() - cpu0
    return {
        **summarize(load),
        "started": load.released_at,
        "ended": load.released_at + load.wall_s,
        "gateway_cpu_ms_per_generation": 1000 * cpu / max(1, len(load.ok)),
    }


def _burst(gw: Gateway, body: dict[str, Any], count: int) -> tuple[list[str], dict[str, Any]]:
    """`count` async runs posted as fast as the gateway takes them, waited for to the end."""
    cpu0 = gw.cpu_seconds()
    posted = run_load(
        LoadSpec(
            client="gateway",
            gateway_url=gw.url,
            endpoint="/api/run",
            body=body,
            count=count,
            concurrency=POST_CONCURRENCY,
            max_seconds=300,
        )
    )
    run_ids = [r.prompt_id for r in posted.ok]
    ended = _wait_runs_ended(gw, timeout=300)
    cpu = gw.cpu_seconds() - cpu0
    return run_ids, {
        **summarize(posted),
        "all_ended": ended,
        "gateway_cpu_ms_per_run": 1000 * cpu / max(1, len(run_ids)),
    }


def _wait_runs_ended(gw: Gateway, timeout: float) -> bool:
    """No run queued, running or uploading any more (a fresh gateway: only ours)."""
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        while time.monotonic() < deadline:
            busy = False
            for status in ("not-started", "running", "uploading"):
                page = session.get(
                    f"{gw.url}/api/runs", params={"status": status, "limit": 1}, timeout=10
                ).json()
                busy = busy or bool(page["runs"])
            if not busy:
                return True
            time.sleep(0.2)
    return False


def _wait_received(receiver: Receiver, count: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    stats = receiver.stats()
    while stats["unique"] < count and time.monotonic() < deadline:
        time.sleep(0.2)
        stats = receiver.stats()
    return stats


def _delivery_states(gw: Gateway, run_ids: list[str], sample: int) -> dict[str, int]:
    """The `webhook.state` of a sample of runs, as their status reports it."""
    states: dict[str, int] = {}
    with requests.Session() as session:
        for run_id in random.sample(run_ids, min(sample, len(run_ids))):
            body = session.get(f"{gw.url}/api/status/{run_id}", timeout=10).json()
            state = (body.get("webhook") or {}).get("state", "none")
            states[state] = states.get(state, 0) + 1
    return states


def _cores(gw: Gateway, seconds: float) -> float:
    cpu0 = gw.cpu_seconds()
    time.sleep(seconds)
    return (gw.cpu_seconds() - cpu0) / seconds


def _held_outbox_cores(gw: Gateway, receiver: Receiver, concurrency: int) -> dict[str, float]:
    """The worker's CPU, idle, then with every sender slot waiting on a held answer."""
    idle = _cores(gw, 2.0)
    receiver.pause()
    try:
        with requests.Session() as session:
            for _ in range(2 * concurrency):
                session.post(
                    f"{gw.url}/api/run", json={**BODY, "webhook": receiver.url}, timeout=10
                )
        time.sleep(1.0)
        held = _cores(gw, 3.0)
        waiting = receiver.stats()["held"]
    finally:
        receiver.resume()
    return {"idle_cores": idle, "held_cores": held, "held_answers": waiting}


def run(ctx: Context) -> ScenarioResult:
    started = time.monotonic()
    count = 2000 if ctx.quick else 10000
    cycles = 4 if ctx.quick else 10
    slice_s = 2.5 if ctx.quick else 4.0
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    concurrency = 16  # WEBHOOK_CONCURRENCY's default, set so the bound below holds
    bound = concurrency / (ANSWER_MS / 1000)
    result = ScenarioResult(
        "deliveries",
        "10. Webhook deliveries beside generations",
        f"{count} async runs with a webhook each, posted in {cycles} cycles of "
        f"{count // cycles} ({POST_CONCURRENCY} clients), instant jobs; the receiver (its own "
        f"asyncio process) answers every delivery in {ANSWER_MS} ms; "
        f"WEBHOOK_CONCURRENCY={concurrency} (at most {bound:.0f} deliveries/s), signed "
        "(WEBHOOK_SECRET), one worker, runs and outbox in SQLite on disk. Generations: sync "
        f"/api/generate, closed loop of {GEN_CONCURRENCY} clients, ~{slice_s:g} s slices: B "
        "while a cycle's deliveries are under way, D once they are all done.",
    )
    receiver = Receiver(ANSWER_MS, secret).start()
    sim = Simulator(parallel=POST_CONCURRENCY, job_duration_ms="0").start()
    gw = Gateway(
        sim.url,
        inflight=POST_CONCURRENCY,
        worker_connections=2000,
        extra_env={
            "MAX_QUEUED_RUNS": "0",
            "WEBHOOK_SECRET": secret,
            "WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
            "WEBHOOK_CONCURRENCY": str(concurrency),
        },
    ).start()
    data: dict[str, Any] = {"cycles": []}
    run_ids: list[str] = []
    try:
        data["a1"] = a1 = _generate(gw, 1000 if ctx.quick else 2000)
        size = max(100, int(a1["per_s"] * slice_s))
        for _ in range(cycles):
            cycle: dict[str, Any] = {"post_from": time.time()}
            ids, cycle["post"] = _burst(gw, {**BODY, "webhook": receiver.url}, count // cycles)
            run_ids += ids
            cycle["post_to"] = time.time()
            cycle["b"] = _generate(gw, size)
            cycle["b"]["left"] = len(run_ids) - receiver.stats()["unique"]
            cpu0, got0 = gw.cpu_seconds(), receiver.stats()["received"]
            cycle["drain_from"] = time.time()
            stats = _wait_received(receiver, len(run_ids), timeout=len(ids) / bound * 3 + 60)
            cycle["drain_to"] = time.time()
            cycle["drain_deliveries"] = stats["received"] - got0
            cycle["drain_cpu_s"] = gw.cpu_seconds() - cpu0
            time.sleep(0.5)  # the last attempts recorded
            cycle["d"] = _generate(gw, size)
            data["cycles"].append(cycle)
        data["receiver"] = final = receiver.stats()
        data["states"] = _delivery_states(gw, run_ids, 200)
        times = sorted(t for t, _ in receiver.received())
        data["held_outbox"] = _held_outbox_cores(gw, receiver, concurrency)
        data["gateway_warnings"] = gw.warnings()
    finally:
        gw.stop()
        sim.stop()
        receiver.stop()
    result.data.update(data)

    def rate(start: float, end: float) -> float:
        got = bisect.bisect_right(times, end) - bisect.bisect_left(times, start)
        return got / (end - start) if end > start else float("nan")

    done = data["cycles"]
    for cycle in done:
        cycle["b"]["deliveries_per_s"] = rate(cycle["b"]["started"], cycle["b"]["ended"])
        cycle["d"]["deliveries_per_s"] = rate(cycle["d"]["started"], cycle["d"]["ended"])
    valid = [c for c in done if c["b"]["left"] > 0 and c["d"]["per_s"]]
    ratios = [c["b"]["per_s"] / c["d"]["per_s"] for c in valid]
    ratio = median(ratios)
    drained = sum(c["drain_deliveries"] for c in done)
    drain_s = sum(c["drain_to"] - c["drain_from"] for c in done)
    drain_cpu = sum(c["drain_cpu_s"] for c in done)
    result.row(
        "deliveries received / unique / bad signatures",
        f"{final['received']} / {final['unique']} / {final['bad_signatures']}",
        "",
        f"of {len(run_ids)} runs posted",
    )
    drain_rate = drained / drain_s if drain_s else float("nan")
    result.row(
        "deliveries/s, outbox draining alone",
        drain_rate,
        "/s",
        f"{drain_rate / bound:.0%} of the {bound:.0f}/s that {concurrency} slots x "
        f"{ANSWER_MS} ms allow",
    )
    result.row(
        "deliveries/s while runs are posted and run",
        median([rate(c["post_from"], c["post_to"]) for c in done]),
        "/s",
        f"runs accepted at {median([c['post']['per_s'] for c in done]):.0f}/s, "
        f"{sum(c['post']['errors'] for c in done)} errors",
    )
    result.row(
        "deliveries/s during B slices / D slices",
        f"{median([c['b']['deliveries_per_s'] for c in done]):.1f} / "
        f"{median([c['d']['deliveries_per_s'] for c in done]):.1f}",
        "/s",
        "medians",
    )
    result.row(
        "receiver: most deliveries waiting for their answer at once",
        final["max_in_flight"],
        "",
        f"WEBHOOK_CONCURRENCY={concurrency}",
    )
    result.row(
        "gateway CPU per delivery (outbox draining alone)",
        1000 * drain_cpu / drained if drained else float("nan"),
        "ms",
    )
    held = data["held_outbox"]
    result.row(
        "worker CPU, outbox full and every answer held / idle",
        f"{held['held_cores']:.3f} / {held['idle_cores']:.3f}",
        "cores",
        f"{held['held_answers']} attempts waiting on the receiver, nothing else to do",
    )
    states = ", ".join(f"{k} {v}" for k, v in sorted(data["states"].items()))
    result.row("recorded delivery state of 200 sampled runs", states)
    result.row(
        "generations/s before any run (A1)",
        a1["per_s"],
        "/s",
        f"p50 {a1['p50_ms']:.1f} ms, gateway CPU {a1['gateway_cpu_ms_per_generation']:.2f} ms each",
    )
    for kind, label in (("b", "with deliveries under way (B)"), ("d", "outbox empty (D)")):
        group = [c[kind] for c in done]
        busy = [f["per_s"] * f["gateway_cpu_ms_per_generation"] / 1000 for f in group]
        result.row(
            f"generations/s {label}, median of {len(group)} slices",
            median([f["per_s"] for f in group]),
            "/s",
            f"p50 latency {median([f['p50_ms'] for f in group]):.1f} ms, gateway CPU "
            f"{median([f['gateway_cpu_ms_per_generation'] for f in group]):.2f} ms per "
            f"generation (worker busy {median(busy):.2f} cores), "
            f"{sum(f['errors'] for f in group)} errors; slices "
            + ", ".join(f"{f['per_s']:.0f}" for f in group),
        )
    result.row(
        "B / D, median over the cycles",
        ratio,
        "x",
        ", ".join(f"{r:.2f}" for r in ratios) + f" ({len(ratios)} of {cycles} cycles valid)",
    )
    if len(ratios) < cycles:
        result.notes.append("Some B slices ended with the outbox empty: left out of the ratio.")
    for warning in data["gateway_warnings"]:
        result.notes.append(f"gateway log: {warning}")
    result.targets += [
        Target(f"{count} deliveries received", final["unique"], count, op=">="),
        Target("generations/s with deliveries / without (B / D)", ratio, 0.95, "x", op=">="),
    ]
    result.seconds = time.monotonic() - started
    return result
