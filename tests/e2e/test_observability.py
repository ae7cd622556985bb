"""Metrics and logs of the real service: `GET /metrics` under gunicorn with two workers
(whichever worker answers a scrape, the figures are the whole service's), and
`LOG_FORMAT=json`."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from .harness import Gateway, Simulator, chain, until

pytestmark = pytest.mark.e2e

GENERATE = "api.generate.generate_url"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus' text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def dispatching_pids(gateway: Gateway) -> set[int]:
    """The workers that dispatched (and so counted) the runs, from the run store."""
    with sqlite3.connect(os.path.join(gateway.workdir, "data", "runs.sqlite3")) as db:
        return {int(owner.split(":")[1]) for (owner,) in db.execute("SELECT owner FROM runs")}


def test_metrics_add_up_over_workers(make_gateway) -> None:
    sim = Simulator("0.3.64").start()
    try:
        gateway = make_gateway(sim.url, workers=2, METRICS_TOKEN="scrape-me")
        sent = 0
        with ThreadPoolExecutor(4) as pool:
            # Until both workers have dispatched runs: one worker's own figures
            # would then fall short of the totals.
            while len(dispatching_pids(gateway)) < 2:
                assert sent < 40, "every run landed on one worker"
                bodies = [{"workflow_data": chain(sent + i)} for i in range(4)]
                answers = pool.map(lambda b: gateway.post("/api/generate", json=b), bodies)
                assert [a.status_code for a in answers] == [200] * 4
                sent += 4
        bad = gateway.post("/api/generate", json={"workflow_data": {"1": {"class_type": "No"}}})
        assert bad.status_code == 400
        assert gateway.get("/metrics").status_code == 401
        for _ in range(6):  # scrapes land on either worker
            response = gateway.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
            assert response.status_code == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = response.text
            assert sample(text, "comfysync_runs_total", outcome="succeeded") == sent
            assert sample(text, "comfysync_http_requests_total", route=GENERATE, status="200") == (
                sent
            )
            assert sample(text, "comfysync_http_requests_total", route=GENERATE, status="400") == 1
            phases = "comfysync_run_phase_seconds_count"
            assert sample(text, phases, phase="stored", workflow="inline") == sent
            assert sample(text, "comfysync_queue_depth") == 0
            assert sample(text, "comfysync_runs_in_flight", server="default") == 0
            assert sample(text, "comfysync_held_requests") == 0
    finally:
        sim.stop()


def test_json_logs_carry_the_run(make_gateway) -> None:
    sim = Simulator("0.3.64").start()
    try:
        sim.control("config", class_delay_ms={"ImageInvert": 5000})
        gateway = make_gateway(sim.url, LOG_FORMAT="json", LOG_LEVEL="INFO")
        response = gateway.post("/api/run", json={"workflow_data": chain(3)})
        run_id = response.json()["run_id"]
        until(lambda: gateway.get(f"/api/status/{run_id}").json()["status"] == "running")
        cancel = gateway.post(f"/api/run/{run_id}/cancel", headers={"X-Request-Id": "req-42"})
        assert cancel.headers["X-Request-Id"] == "req-42"

        def lines() -> list[dict]:
            text = gateway.logs()
            return [json.loads(line) for line in text.splitlines() if line.strip()]

        # Every line is one JSON object, gunicorn's own included.
        tagged = until(lambda: [e for e in lines() if e.get("run_id") == run_id], 10)
        assert any("Booting worker" in e["message"] for e in lines())
        cancelled = [e for e in tagged if "cancelled prompt" in e["message"]]
        assert cancelled and cancelled[0]["server"] == "default"
        assert cancelled[0]["prompt_id"] == gateway.get(f"/api/status/{run_id}").json()["prompt_id"]
        assert {"time", "level", "logger", "message"} <= cancelled[0].keys()
    finally:
        sim.stop()
