"""Scenario 7, live events: many SSE streams held at once, and how soon a frame reaches them.

N async runs go to a simulator with N slots and 2-12 s jobs; one SSE stream per
run is opened right after (raw sockets in one selector loop, so the load
generator holds a thousand streams without threads). Frame to client is the
time a stream receives its run's `executed` event minus the simulator's own
`execution_success` timestamp for that prompt (ComfyUI sends `executed` just
before it; same machine clock): the watcher, the event batch window, the
store write, the wake-up and the SSE write in between. With two workers,
about half the streams sit on the worker that does not watch their run, so
their events cross processes through the SQLite store and its wake-up sockets.
"""

from __future__ import annotations

import selectors
import socket
import time
from typing import Any

import requests

from ..processes import Gateway, Simulator
from ..report import ScenarioResult, Target
from ..stats import percentile
from . import Context, PeakRss, execution_times

# Jobs of 2 to 12 s: every stream is open while the runs end, about 100 a second
# at 1,000 streams (all ending in the same instant would measure a burst instead).
JOB_MS = (2000, 12000)


def _open_streams(url: str, run_ids: list[str]) -> tuple[selectors.BaseSelector, dict]:
    host, port = url.removeprefix("http://").split(":")
    selector = selectors.DefaultSelector()
    streams: dict[socket.socket, dict[str, Any]] = {}
    for run_id in run_ids:
        sock = socket.create_connection((host, int(port)))
        sock.sendall(
            f"GET /api/status/{run_id}/events HTTP/1.1\r\nHost: bench\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        streams[sock] = {"run_id": run_id, "buffer": b"", "seen": {}}
    return selector, streams


def _read_all(selector: selectors.BaseSelector, streams: dict, timeout: float) -> None:
    """Read every stream until each has its final event (or `timeout`)."""
    open_ = set(streams)
    deadline = time.monotonic() + timeout
    while open_ and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1.0):
            sock = key.fileobj
            state = streams[sock]
            data = sock.recv(65536)
            now = time.time()
            if not data:
                open_.discard(sock)
                selector.unregister(sock)
                continue
            state.setdefault("attached", now)  # its first bytes: the stream is live
            state["buffer"] += data
            *frames, state["buffer"] = state["buffer"].split(b"\n\n")
            for frame in frames:
                for line in frame.split(b"\n"):
                    if line.startswith(b"event: "):
                        kind = line[7:].decode()
                        state["seen"].setdefault(kind, now)
                        if kind in ("succeeded", "failed", "cancelled"):
                            open_.discard(sock)
                            selector.unregister(sock)
    for sock in streams:
        sock.close()


def _measure(ctx: Context, count: int, workers: int) -> dict[str, Any]:
    sim = Simulator(parallel=count, job_duration_ms=f"{JOB_MS[0]}-{JOB_MS[1]}").start()
    gw = Gateway(
        sim.url, workers=workers, inflight=count, extra_env={"MAX_QUEUED_RUNS": "0"}
    ).start()
    try:
        with requests.Session() as session:
            run_ids = [
                session.post(
                    f"{gw.url}/api/run", json={"workflow": "bench_small"}, timeout=30
                ).json()["run_id"]
                for _ in range(count)
            ]
        idle = PeakRss(gw)
        selector, streams = _open_streams(gw.url, run_ids)
        idle.tick()
        _read_all(selector, streams, timeout=JOB_MS[1] / 1000 + 120)
        peak_mb = idle.peak_mb()
        start_mb = max(idle.start_kb.values()) / 1024
        with requests.Session() as session:
            prompts = {
                run_id: session.get(f"{gw.url}/api/status/{run_id}", timeout=30).json()["prompt_id"]
                for run_id in run_ids
            }
        finished = execution_times(sim.history(count + 100))
    finally:
        gw.stop()
        sim.stop()
    lags = []
    complete = 0
    for state in streams.values():
        seen = state["seen"]
        complete += "succeeded" in seen
        prompt = prompts.get(state["run_id"])
        if "executed" in seen and prompt in finished:
            ended = finished[prompt][1] / 1000
            # Runs that ended before their stream was live are replays, not live events.
            if state.get("attached", ended) < ended:
                lags.append((seen["executed"] - ended) * 1000)
    return {
        "streams": count,
        "complete": complete,
        "lags": lags,
        "live": len(lags),
        "peak_mb": peak_mb,
        "start_mb": start_mb,
    }


def run(ctx: Context) -> ScenarioResult:
    started = time.monotonic()
    count = 200 if ctx.quick else 1000
    result = ScenarioResult(
        "events",
        "7. Live events: SSE streams",
        f"{count} async runs of {JOB_MS[0] / 1000:g}-{JOB_MS[1] / 1000:g} s on a simulator "
        f"with {count} slots, one SSE stream each; runs in SQLite on disk. Frame to client = "
        "the stream's `executed` event received - the simulator's execution_success "
        "timestamp, for streams live before their run ended.",
    )
    one = _measure(ctx, count, workers=1)
    two = _measure(ctx, count, workers=2)
    result.data.update(one={**one, "lags": sorted(one["lags"])[-20:]})
    result.data.update(two={**two, "lags": sorted(two["lags"])[-20:]})
    result.row(f"streams complete (of {count}), 1 worker", one["complete"])
    result.row("worker RSS with every stream open, 1 worker", one["peak_mb"], "MB")
    per_stream = (one["peak_mb"] - one["start_mb"]) * 1024 / count
    result.row("RSS per open stream (above the worker before)", per_stream, "kB")
    result.row("streams live before their run ended (measured), 1 worker", one["live"])
    result.row("frame to client p50, 1 worker", percentile(one["lags"], 50), "ms")
    result.row("frame to client p99, 1 worker", percentile(one["lags"], 99), "ms")
    result.row(f"streams complete (of {count}), 2 workers", two["complete"])
    result.row("frame to client p50, 2 workers (half across)", percentile(two["lags"], 50), "ms")
    result.row("frame to client p99, 2 workers (half across)", percentile(two["lags"], 99), "ms")
    result.targets.append(
        Target("frame to client p99, 1 worker", percentile(one["lags"], 99), 50, "ms")
    )
    result.seconds = time.monotonic() - started
    return result
