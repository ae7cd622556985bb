"""Scenario 8, webhooks: deliveries to a receiver that takes 200 ms to answer, and what
they cost the runs.

The same N async runs go through twice, once without a webhook and once with
one each; the receiver (a threaded server in the bench process) sleeps
200 ms before its 204. Deliveries/s counts from the first delivery to the
last; runs/s from the first accept to the last success, in both passes.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..load import LoadSpec, run_load
from ..processes import Gateway, Simulator
from ..report import ScenarioResult, Target
from .runs import _epoch, _wait_all

CONCURRENCY = 32
ANSWER_S = 0.2


class _Receiver:
    def __init__(self) -> None:
        self.times: list[float] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(ANSWER_S)
                with receiver.lock:
                    receiver.times.append(time.time())
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _pass(count: int, webhook: str | None) -> tuple[float, int]:
    sim = Simulator(parallel=CONCURRENCY, job_duration_ms="20").start()
    env = {"MAX_QUEUED_RUNS": "0", "WEBHOOK_ALLOW_HOSTS": "127.0.0.1", "WEBHOOK_CONCURRENCY": "64"}
    gw = Gateway(sim.url, inflight=CONCURRENCY, extra_env=env).start()
    body: dict[str, Any] = {"workflow": "bench_small"}
    if webhook:
        body["webhook"] = webhook
    try:
        first = time.time()
        accepted = run_load(
            LoadSpec(
                client="gateway",
                gateway_url=gw.url,
                endpoint="/api/run",
                body=body,
                count=count,
                concurrency=CONCURRENCY,
                max_seconds=300,
            )
        )
        records = _wait_all(gw, [r.prompt_id for r in accepted.ok], timeout=300)
        if webhook:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and len(RECEIVER.times) < count:
                time.sleep(0.2)
    finally:
        gw.stop()
        sim.stop()
    ended = [_epoch(b["ended_at"]) for b in records.values() if b["ended_at"]]
    ok = sum(b["status"] == "success" for b in records.values())
    return (len(ended) / (max(ended) - first) if ended else float("nan")), ok


RECEIVER: _Receiver


def run(ctx: Any) -> ScenarioResult:
    global RECEIVER
    started = time.monotonic()
    count = 2000 if ctx.quick else 10000
    result = ScenarioResult(
        "webhooks",
        "8. Webhooks",
        f"{count} async runs, {CONCURRENCY} clients, simulator with {CONCURRENCY} slots and "
        f"20 ms jobs, one worker, WEBHOOK_CONCURRENCY=64; the receiver answers in "
        f"{ANSWER_S * 1000:.0f} ms. Each pass on fresh processes.",
    )
    RECEIVER = _Receiver()
    plain, plain_ok = _pass(count, None)
    hooked, hooked_ok = _pass(count, RECEIVER.url)
    times = sorted(RECEIVER.times)
    rate = len(times) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    RECEIVER.server.shutdown()
    result.row("runs/s without webhooks", plain, "/s")
    result.row("runs/s with a webhook each", hooked, "/s")
    result.row("with / without", hooked / plain if plain else float("nan"))
    result.row("deliveries received", f"{len(times)} of {count}")
    result.row("deliveries/s (200 ms receiver)", rate, "/s")
    result.row("runs not succeeded", f"{count - plain_ok} / {count - hooked_ok}")
    result.targets.append(
        Target("runs/s with webhooks / without", hooked / plain if plain else 0, 0.95, "", ">=")
    )
    result.seconds = time.monotonic() - started
    return result
