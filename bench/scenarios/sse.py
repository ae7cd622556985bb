"""Scenario 9, run events as Server-Sent Events: 1,000 streams held by ONE gevent worker.

1,000 runs are posted (`POST /api/run`) to a simulator with 40 slots, whose
first 40 jobs ("the gate") last long enough for everything else to be set up:
the other runs wait in the gateway's queue. Then one stream per run is opened
(`GET /api/status/<run_id>/events`), all 1,000 at once, by a separate asyncio
process (`bench.sse_client`). Once every stream has its `queued` event the
jobs are made short, and the queue drains 40 at a time while the streams
that wait stay open: each run's `started`, `progress`, `executed` and
`succeeded` arrive on its stream among up to 1,000 open ones.

Latency: the client's receive time of `started` minus its `data.at`, the
simulator's `execution_start` timestamp (same machine, same clock): the
frame over the gateway's WebSocket, the event batch written to the store,
the stream's wake-up and write. Only starts after the stream was attached
count (the gate's runs began before their streams existed: replayed, not
live). Memory: the worker's RSS idle, with the 1,000 runs queued, and with
the 1,000 streams open, read from /proc while the client runs.
"""

from __future__ import annotations

import bisect
import time
from typing import Any

from ..processes import Gateway, Simulator, memory_kb
from ..report import ScenarioResult, Target
from ..sse_client import StreamClient, StreamRecord, StreamResult, StreamSpec
from ..stats import median, percentile
from . import Context, PeakRss, SimCost, execution_times

STREAMS = 1000
SLOTS = 40
GATE_MS = 10000  # the first SLOTS jobs: longer than posting and attaching take (~3 s)
JOB_MS = (1000, 2000)  # then: ~27 starts/s, the queue drains in ~40 s
BODY = {"workflow": "bench_small"}


def _live_started(streams: list[StreamRecord]) -> list[tuple[float, float, StreamRecord]]:
    """(ComfyUI's start, receive time, stream) of each `started` that came after the
    stream was attached, in epoch seconds."""
    found = []
    for record in streams:
        event = record.first("started")
        if event is None or event[3] is None:
            continue
        at = event[3] / 1000
        if at > record.head_at > 0:
            found.append((at, event[2], record))
    return found


def _open_counter(streams: list[StreamRecord]):
    """A function t -> how many streams were open at t (headers in, final event not yet)."""
    opens = sorted(s.head_at for s in streams if s.head_at)
    ends = sorted(s.ended for s in streams if s.head_at)

    def open_at(t: float) -> int:
        return bisect.bisect_right(opens, t) - bisect.bisect_right(ends, t)

    return open_at


def _figures(result: StreamResult, sim: Simulator, n: int, marks: dict[str, Any]) -> dict[str, Any]:
    streams = result.streams
    live = _live_started(streams)
    open_at = _open_counter(streams)
    all_open = result.all_attached_at
    lags = [(got - at) * 1000 for at, got, _ in live]
    # The starts while all N streams had been attached (only finished ones gone since).
    during = [(got - at) * 1000 for at, got, _ in live if all_open and at >= all_open]
    open_counts = [open_at(at) for at, _, _ in live if all_open and at >= all_open]
    history = execution_times(sim.history(n + 200))
    finish_lags = []
    for record in streams:
        final = record.first("succeeded")
        stamps = history.get(record.prompt_id)
        if final is not None and stamps:
            finish_lags.append(final[2] * 1000 - stamps[1])
    # ComfyUI's own timestamp, as the event carries it, against its history.
    mismatched = sum(
        1
        for _, _, record in live
        if record.prompt_id in history
        and history[record.prompt_id][0] != record.first("started")[3]
    )
    errors = [s.error for s in streams if s.error] + result.post_errors
    return {
        "runs_posted": result.posted,
        "streams": len(streams),
        "errors": len(errors),
        "first_error": errors[0][:200] if errors else "",
        "peak_open": result.peak_open,
        "live_started": len(live),
        "replayed_started": sum(1 for s in streams if s.first("started")) - len(live),
        "started_p50_ms": percentile(lags, 50),
        "started_p90_ms": percentile(lags, 90),
        "started_p99_ms": percentile(lags, 99),
        "started_max_ms": max(lags, default=float("nan")),
        "started_all_open_count": len(during),
        "started_all_open_p99_ms": percentile(during, 99),
        "open_at_those_starts_max": max(open_counts, default=0),
        "open_at_those_starts_median": median(open_counts),
        "succeeded_after_success_p50_ms": percentile(finish_lags, 50),
        "succeeded_after_success_p99_ms": percentile(finish_lags, 99),
        "at_mismatches": mismatched,
        "events_per_stream": median([len(s.events) for s in streams]),
        "attach_s": (all_open - result.extra.get("streaming_from", all_open)) if all_open else None,
        "post_s": result.extra.get("posted_at", 0) - result.extra.get("posting_started", 0),
        "client_cpu_s": result.cpu_s,
        **marks,
    }


def _round(n: int) -> dict[str, Any]:
    sim = Simulator(parallel=SLOTS, job_duration_ms="0").start()
    gw = Gateway(
        sim.url,
        worker_connections=n + 500,
        backlog=4096,
        inflight=SLOTS,
        extra_env={"MAX_QUEUED_RUNS": "0"},
    ).start()
    try:
        # Warm-up: every code path of a run and its stream, before memory is read.
        warm = StreamSpec("fanout", [gw.url], count=20, max_seconds=60, concurrency=4, body=BODY)
        StreamClient(warm).run()
        pid = gw.worker_pids[0]
        sim.configure(job_duration_ms=[GATE_MS, GATE_MS])
        time.sleep(0.5)
        marks: dict[str, Any] = {"rss_idle_mb": memory_kb(pid)["VmRSS"] / 1024}
        rss = PeakRss(gw)
        cost = SimCost(sim)
        cpu0 = gw.cpu_seconds()
        drain_s = (n - SLOTS) / (SLOTS / (sum(JOB_MS) / 2000))
        spec = StreamSpec(
            "fanout",
            [gw.url],
            count=n,
            max_seconds=GATE_MS / 1000 + 2 * drain_s + 90,
            concurrency=32,
            body=BODY,
            hold=True,
        )
        client = StreamClient(spec)
        clock: dict[str, float] = {}

        def on_tick(status: dict[str, Any]) -> None:
            rss.tick()
            now = time.monotonic()
            phase = status.get("phase")
            if phase == "posted" and "posted" not in clock:
                clock["posted"] = now
            if "posted" in clock and "released" not in clock and now - clock["posted"] > 0.5:
                marks["rss_runs_queued_mb"] = memory_kb(pid)["VmRSS"] / 1024
                clock["released"] = now
                client.release()
            attached = status.get("all_attached_at") or (
                "released" in clock and now - clock["released"] > 60
            )
            if attached and "attached" not in clock:
                clock["attached"] = now
                marks["rss_streams_open_mb"] = memory_kb(pid)["VmRSS"] / 1024
                marks["open_when_read"] = status.get("open", 0)
                sim.configure(job_duration_ms=list(JOB_MS))

        result = client.run(on_tick)
        marks["worker_cpu_ms_per_stream"] = 1000 * (gw.cpu_seconds() - cpu0) / max(1, n)
        marks["peak_rss_mb"] = rss.peak_mb()
        marks["sim_cpu_ms_per_prompt"] = cost.per_prompt_ms()
        marks["gateway_warnings"] = gw.warnings()
        figures = _figures(result, sim, n, marks)
    finally:
        gw.stop()
        sim.stop()
    queued = figures.get("rss_runs_queued_mb", float("nan"))
    opened = figures.get("rss_streams_open_mb", float("nan"))
    figures["rss_kb_per_stream"] = 1024 * (opened - queued) / max(1, figures["peak_open"])
    figures["rss_kb_per_queued_run"] = 1024 * (queued - figures["rss_idle_mb"]) / max(1, n)
    return figures


def run(ctx: Context) -> ScenarioResult:
    started = time.monotonic()
    n = STREAMS
    result = ScenarioResult(
        "sse",
        "9. SSE: 1,000 streams held by one gevent worker",
        f"{n} runs posted by 32 clients, then one `GET /api/status/<run_id>/events` per run, "
        f"all held at once by one asyncio process; ONE worker (WORKER_CONNECTIONS={n + 500}), "
        f"runs in SQLite on disk. Simulator with {SLOTS} slots (COMFYUI_MAX_INFLIGHT={SLOTS}): "
        f"its first {SLOTS} jobs last {GATE_MS // 1000} s while the streams attach, then "
        f"{JOB_MS[0] / 1000:g}-{JOB_MS[1] / 1000:g} s each, so the queue drains while the "
        "other streams wait open. Latency = receive time of `started` - its `data.at` "
        "(ComfyUI's execution_start, epoch ms), live starts only. "
        f"{ctx.rounds(3)} round(s), a fresh gateway each; medians.",
    )
    rounds = [_round(n) for _ in range(ctx.rounds(3))]
    result.data["rounds"] = rounds

    def med(key: str) -> float:
        return median([r[key] for r in rounds])

    result.row("streams opened / errors", f"{med('streams'):.0f} / {med('errors'):.0f}", "", "")
    if rounds[0]["first_error"]:
        result.notes.append(f"first error: {rounds[0]['first_error']}")
    result.row("streams open at once (client's count)", med("peak_open"))
    result.row("worker RSS idle (after a warm-up)", med("rss_idle_mb"), "MB")
    result.row(
        f"worker RSS with {n} runs queued, no stream",
        med("rss_runs_queued_mb"),
        "MB",
        f"{med('rss_kb_per_queued_run'):.1f} kB per queued run",
    )
    result.row(f"worker RSS with {n} streams open", med("rss_streams_open_mb"), "MB")
    result.row("worker RSS per open stream", med("rss_kb_per_stream"), "kB")
    result.row("worker peak RSS", med("peak_rss_mb"), "MB")
    result.row(
        "`started` event latency p50",
        med("started_p50_ms"),
        "ms",
        f"p90 {med('started_p90_ms'):.1f} ms, max {med('started_max_ms'):.0f} ms",
    )
    result.row(
        "`started` event latency p99",
        med("started_p99_ms"),
        "ms",
        f"{med('live_started'):.0f} live starts ({med('replayed_started'):.0f} replayed, "
        "from the gate, not counted)",
    )
    result.row(
        "`started` latency p99 after all streams attached",
        med("started_all_open_p99_ms"),
        "ms",
        f"{med('started_all_open_count'):.0f} starts with up to "
        f"{med('open_at_those_starts_max'):.0f} (median {med('open_at_those_starts_median'):.0f}) "
        "streams open",
    )
    result.row(
        "execution_success -> `succeeded` event p50 / p99",
        f"{med('succeeded_after_success_p50_ms'):.1f} / "
        f"{med('succeeded_after_success_p99_ms'):.1f}",
        "ms",
        "the output copied and the run recorded first",
    )
    result.row("events per stream (median)", med("events_per_stream"))
    result.row(
        "time to post the runs / attach every stream",
        f"{med('post_s'):.1f} / {med('attach_s'):.1f}",
        "s",
    )
    result.row("worker CPU per run with its stream", med("worker_cpu_ms_per_stream"), "ms")
    result.row("stream client CPU (whole round)", med("client_cpu_s"), "s")
    mismatches = sum(r["at_mismatches"] for r in rounds)
    if mismatches:
        result.notes.append(f"{mismatches} `started` events whose `at` differs from the history")
    for warning in rounds[-1]["gateway_warnings"]:
        result.notes.append(f"gateway log: {warning}")
    result.targets += [
        Target(f"N={n}: `started` event latency p99", med("started_p99_ms"), 50, "ms"),
        Target(f"N={n}: streams open at once", med("peak_open"), n, op=">="),
        Target(f"N={n}: stream errors", sum(r["errors"] for r in rounds), 0),
    ]
    result.seconds = time.monotonic() - started
    return result
