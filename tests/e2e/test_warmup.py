"""WARMUP_WORKFLOW through gunicorn: /ready waits for it, and each server runs it once per start."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Gateway, Simulator, _children, _free_port, chain, until

pytestmark = pytest.mark.e2e

SLOW = 3000  # ms the warm-up graph's blur takes on a "cold" server


@pytest.fixture
def fresh_sims() -> Iterator[list[Simulator]]:
    """Simulators started on demand (the warm-up does not depend on ComfyUI's version)."""
    started: list[Simulator] = []
    yield started
    for sim in started:
        sim.stop()


def _sim(started: list[Simulator], blur_ms: float) -> Simulator:
    sim = Simulator().start()
    started.append(sim)
    sim.control("config", class_delay_ms={"ImageBlur": blur_ms})
    return sim


def _workflows(tmp_path: Path, graph: dict) -> str:
    (tmp_path / "warm").mkdir()
    (tmp_path / "warm" / "v1.json").write_text(json.dumps(graph))
    (tmp_path / "warm" / "aliases.json").write_text('{"production": "v1"}')
    return str(tmp_path)


def _ready(gateway: Gateway) -> dict | None:
    response = gateway.get("/ready")
    return response.json() if response.status_code == 200 else None


def _prompts(sim: Simulator) -> int:
    return len(sim.get("/history"))


def test_ready_waits_for_the_warmup_which_runs_once_per_start(
    fresh_sims: list[Simulator], make_gateway, tmp_path: Path
) -> None:
    sim = _sim(fresh_sims, SLOW)
    gateway = make_gateway(
        sim.url,
        workers=2,
        WORKFLOWS_DIR=_workflows(tmp_path, chain(blur=1)),
        WARMUP_WORKFLOW="warm@production",
    )
    response = gateway.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["reasons"] == ["warming up"]
    assert body["warmup"]["workflow"] == "warm@production"
    assert body["warmup"]["servers"]["default"]["status"] in ("pending", "running")

    body = until(lambda: _ready(gateway), timeout=30, interval=0.1)
    assert body["warmup"]["servers"]["default"]["status"] == "done"
    assert body["warmup"]["servers"]["default"]["seconds"] >= SLOW / 1000
    for _ in range(10):  # whichever worker answers
        assert gateway.get("/ready").status_code == 200
    assert _prompts(sim) == 1  # two workers, one warm-up

    # A worker gunicorn replaces joins a start that has warmed up already.
    assert gateway.proc is not None
    workers = set(_children(gateway.proc.pid))
    os.kill(min(workers), signal.SIGKILL)
    until(lambda: len(set(_children(gateway.proc.pid)) - workers) == 1, timeout=30)
    for _ in range(10):
        assert gateway.get("/ready").status_code == 200
    assert _prompts(sim) == 1

    # A new start warms again.
    gateway.kill9()
    gateway.restart()
    assert gateway.get("/ready").status_code == 503
    until(lambda: _ready(gateway), timeout=30, interval=0.1)
    assert _prompts(sim) == 2


def test_one_warm_server_makes_the_gateway_ready(
    fresh_sims: list[Simulator], make_gateway, tmp_path: Path
) -> None:
    slow, quick = _sim(fresh_sims, SLOW), _sim(fresh_sims, 0)
    gateway = make_gateway(
        slow.url,
        workers=2,
        COMFYUI_URLS=f"slow={slow.url},quick={quick.url}",
        WORKFLOWS_DIR=_workflows(tmp_path, chain(blur=1)),
        WARMUP_WORKFLOW="warm",
    )
    body = until(lambda: _ready(gateway), timeout=30, interval=0.1)
    servers = body["warmup"]["servers"]
    assert servers["quick"]["status"] == "done", servers
    assert servers["slow"]["status"] == "running"
    until(lambda: _ready(gateway)["warmup"]["servers"]["slow"]["status"] == "done", timeout=30)
    assert (_prompts(slow), _prompts(quick)) == (1, 1)


def test_a_server_down_at_start_is_warmed_when_it_comes_up(
    fresh_sims: list[Simulator], make_gateway, tmp_path: Path
) -> None:
    sim = Simulator()
    sim.port = _free_port()
    gateway = make_gateway(
        f"http://127.0.0.1:{sim.port}",
        WORKFLOWS_DIR=_workflows(tmp_path, chain()),
        WARMUP_WORKFLOW="warm",
    )
    waiting = until(
        lambda: (
            (body := gateway.get("/ready").json())["warmup"]["servers"]["default"]["status"]
            == "waiting"
            and body
        ),
        timeout=30,
    )
    assert waiting["warmup"]["servers"]["default"]["error"] == "comfyui_unavailable"
    assert gateway.get("/ready").status_code == 503
    fresh_sims.append(sim.start())
    body = until(lambda: _ready(gateway), timeout=60, interval=0.1)
    assert body["warmup"]["servers"]["default"]["status"] == "done"
    assert _prompts(sim) == 1


def test_a_failed_warmup_is_logged_and_shown_and_does_not_block(
    fresh_sims: list[Simulator], make_gateway, tmp_path: Path
) -> None:
    sim = _sim(fresh_sims, 0)
    graph = chain()
    graph["1"]["inputs"]["width"] = -5  # ComfyUI refuses it
    gateway = make_gateway(
        sim.url, WORKFLOWS_DIR=_workflows(tmp_path, graph), WARMUP_WORKFLOW="warm"
    )
    body = until(lambda: _ready(gateway), timeout=30, interval=0.1)
    assert body["warmup"]["servers"]["default"] == {
        "status": "failed",
        "error": "comfyui_validation_error",
    }
    assert "warm-up warm on default failed: ComfyUI rejected the workflow" in gateway.logs()


def test_an_unknown_warmup_workflow_stops_the_start(tmp_path: Path) -> None:
    env = {"WORKFLOWS_DIR": str(tmp_path), "WARMUP_WORKFLOW": "nope"}
    gateway = Gateway("http://127.0.0.1:9", env=env)
    with pytest.raises(RuntimeError) as caught:
        gateway.start()
    assert "WARMUP_WORKFLOW='nope' is invalid: Workflow 'nope' not found" in str(caught.value)
