"""Prometheus metrics, right over every gunicorn worker: `GET /metrics`.

prometheus_client's multiprocess mode: each worker writes its samples to
files in `PROMETHEUS_MULTIPROC_DIR` (gunicorn.conf.py gives each master a
fresh folder before it forks workers), and a scrape, answered by whichever
worker, adds them up. Without that variable (one process: app.py, tests) the
process's own registry answers. Figures the run store holds for everyone
(queue depth, runs in flight per server) are read from it at scrape time
rather than counted by each process.

Labels stay few: routes are Flask endpoints, servers their names (never
addresses), workflows the stored names (inline graphs are "inline").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

REQUESTS = Counter(
    "comfysync_http_requests", "HTTP requests answered, by route and status", ["route", "status"]
)
RUNS = Counter("comfysync_runs", "Runs that ended, by outcome", ["outcome"])
# A generation's phases as its `timings` report them (queued: accepted to in
# ComfyUI's queue; executed: to ComfyUI's end; fetched: outputs copied; stored).
PHASE_SECONDS = Histogram(
    "comfysync_run_phase_seconds",
    "Seconds each phase of a successful run took, by workflow",
    ["phase", "workflow"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
HELD = Gauge(
    "comfysync_held_requests", "Sync requests waiting for their run", multiprocess_mode="livesum"
)
RECONNECTS = Counter(
    "comfysync_websocket_reconnects", "WebSocket connections to a server opened again", ["server"]
)
STALLS = Counter(
    "comfysync_websocket_stalls",
    "WebSocket connections dropped for silence (WS_STALL_TIMEOUT)",
    ["server"],
)
UPLOAD_FAILURES = Counter(
    "comfysync_storage_upload_failures", "Outputs kept on local disk because the upload failed"
)
INPUT_REFUSALS = Counter(
    "comfysync_input_image_refusals", "Input images refused (unreachable, blocked, too large...)"
)
WEBHOOKS = Counter(
    "comfysync_webhook_attempts", "Webhook delivery attempts, by outcome", ["outcome"]
)


def observe_phases(workflow: str | None, timings: dict[str, float]) -> None:
    """Record a successful run's phase timings (milliseconds, as in its answer)."""
    label = workflow or "inline"
    for phase in ("queued", "executed", "fetched", "stored"):
        if phase in timings:
            PHASE_SECONDS.labels(phase, label).observe(timings[phase] / 1000)


class StoreCollector(Collector):
    """Queue depth and runs in flight per server, from the run store, at scrape time."""

    def __init__(self, queued: Callable[[], int], in_flight: Callable[[], dict[str, int]]):
        self.queued = queued
        self.in_flight = in_flight

    def collect(self) -> Iterable[Any]:
        depth = GaugeMetricFamily("comfysync_queue_depth", "Runs waiting in the gateway's queue")
        depth.add_metric([], self.queued())
        yield depth
        flight = GaugeMetricFamily(
            "comfysync_runs_in_flight", "Runs sent to a server and not ended", labels=["server"]
        )
        for server, count in self.in_flight().items():
            flight.add_metric([server], count)
        yield flight


def exposition(store: StoreCollector) -> bytes:
    """The text a scrape gets: every worker's samples plus the store's figures."""
    if os.environ.get(MULTIPROC_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_Proxy(REGISTRY))
    registry.register(store)
    return generate_latest(registry)


def mark_dead(pid: int) -> None:
    """A worker exited: drop its live gauges (called by gunicorn's master)."""
    if os.environ.get(MULTIPROC_DIR):
        multiprocess.mark_process_dead(pid)


class _Proxy(Collector):
    """The process registry inside a per-scrape one (so the store collector is not global)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Any]:
        return self.registry.collect()
