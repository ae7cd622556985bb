"""What users see when sockets, ComfyUI or clients misbehave mid-job."""

from __future__ import annotations

import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from .harness import Gateway, Simulator, chain, running_id, send_and_abandon, until

pytestmark = pytest.mark.e2e


@pytest.fixture
def pool():
    with ThreadPoolExecutor(8) as executor:
        yield executor


def _start(pool, gateway: Gateway, body: dict) -> Future:
    return pool.submit(gateway.post, "/api/generate", json=body)


def test_socket_drop_mid_job_still_returns_the_image(sim: Simulator, make_gateway, pool) -> None:
    gateway = make_gateway(sim.url)
    sim.control("config", node_delay_ms=300)
    future = _start(pool, gateway, {"workflow_data": chain(0x202020, blur=2)})
    until(lambda: running_id(sim))
    sim.control("drop_sockets")
    response = future.result(30)
    assert response.status_code == 200, response.text
    assert gateway.get(response.json()["url"]).status_code == 200
    status = gateway.get("/api/status").json()["servers"][0]
    assert status["connections"] == 2  # reconnected once


def test_drop_while_the_prompt_finishes_is_reconciled(sim: Simulator, make_gateway, pool) -> None:
    gateway = make_gateway(sim.url)
    sim.control("config", node_delay_ms=300)
    future = _start(pool, gateway, {"workflow_data": chain(0x202021, blur=1)})
    until(lambda: running_id(sim))
    # Silence the socket so the prompt ends while no frame can reach us.
    sim.control("stall", seconds=30)
    until(lambda: running_id(sim) is None)
    sim.control("unstall")
    response = future.result(30)
    assert response.status_code == 200, response.text


def test_silent_stall_is_detected_and_recovered(sim: Simulator, make_gateway, pool) -> None:
    gateway = make_gateway(sim.url)
    sim.control("config", node_delay_ms=300)
    future = _start(pool, gateway, {"workflow_data": chain(0x303030, blur=3)})
    until(lambda: running_id(sim))
    sim.control("stall", seconds=60)  # far longer than the job: only detection can save it
    started = time.monotonic()
    response = future.result(30)
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 10


def test_client_disconnect_removes_pending_prompt(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url)
    sim.control("config", node_delay_ms=1000)
    blocker = gateway.post("/api/workflow/invert", json={}).json()["prompt_id"]
    until(lambda: running_id(sim) == blocker)
    raw = send_and_abandon(gateway, {"workflow_data": chain(0x404040)})
    pending = until(lambda: sim.get("/queue")["queue_pending"])
    abandoned = pending[0][1]
    raw.close()
    started = time.monotonic()
    until(lambda: not sim.get("/queue")["queue_pending"], timeout=5)
    assert time.monotonic() - started < 5
    assert sim.get(f"/history/{abandoned}") == {}
    assert gateway.get(f"/api/task_status/{abandoned}").json()["status"] == "cancelled"


def test_client_disconnect_interrupts_running_prompt(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url)
    sim.control("config", node_delay_ms=500)
    raw = send_and_abandon(gateway, {"workflow_data": chain(0x505050, blur=8)})
    prompt_id = until(lambda: running_id(sim))
    raw.close()
    entry = until(lambda: sim.get(f"/history/{prompt_id}").get(prompt_id), timeout=5)
    messages = [m[0] for m in entry["status"]["messages"]]
    assert "execution_interrupted" in messages


def test_comfyui_restart_mid_job_fails_fast_with_502(sim: Simulator, make_gateway, pool) -> None:
    # One attempt only: by default a lost prompt is retried (see test_runs).
    gateway = make_gateway(sim.url, GENERATION_TIMEOUT="120", RUN_MAX_ATTEMPTS="1")
    sim.control("config", node_delay_ms=500)
    future = _start(pool, gateway, {"workflow_data": chain(0x606060, blur=6)})
    until(lambda: running_id(sim))
    sim.control("restart", down_seconds=1)
    started = time.monotonic()
    response = future.result(30)
    assert response.status_code == 502
    body = response.json()
    assert body["error_type"] == "prompt_lost"
    assert body["prompt_id"]
    assert time.monotonic() - started < 10


def test_timeout_is_504_and_the_prompt_keeps_running(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url, GENERATION_TIMEOUT="1")
    sim.control("config", node_delay_ms=400)
    response = gateway.post("/api/generate", json={"workflow_data": chain(0x707070, blur=4)})
    assert response.status_code == 504
    prompt_id = response.json()["prompt_id"]
    done = until(
        lambda: gateway.get(f"/api/task_status/{prompt_id}").json()["status"] == "completed"
    )
    assert done


def test_timeout_cancels_when_asked(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url, GENERATION_TIMEOUT="1", CANCEL_ON_TIMEOUT="true")
    sim.control("config", node_delay_ms=400)
    response = gateway.post("/api/generate", json={"workflow_data": chain(0x717171, blur=6)})
    assert response.status_code == 504
    prompt_id = response.json()["prompt_id"]
    entry = until(lambda: sim.get(f"/history/{prompt_id}").get(prompt_id), timeout=5)
    assert entry["status"]["status_str"] == "error"


def test_two_workers_one_socket_each(sim: Simulator, make_gateway, pool) -> None:
    gateway = make_gateway(sim.url, workers=2)
    futures = [
        pool.submit(gateway.post, "/api/generate", json={"workflow_data": chain(i)})
        for i in range(40)
    ]
    assert all(f.result(60).status_code == 200 for f in futures)
    # A worker that got no request may still be starting; it connects on its own.
    until(lambda: sim.stats()["ws_open"] == 2)
    assert sim.stats()["ws_accepted_total"] == 2


def test_sigterm_lets_held_requests_finish(sim: Simulator, make_gateway, pool) -> None:
    gateway = make_gateway(sim.url, GRACEFUL_TIMEOUT="10")
    sim.control("config", node_delay_ms=300)
    future = _start(pool, gateway, {"workflow_data": chain(0x808080, blur=2)})
    until(lambda: running_id(sim))
    gateway.proc.send_signal(signal.SIGTERM)
    response = future.result(30)
    assert response.status_code == 200


def test_sigterm_answers_stragglers_with_503(sim: Simulator, make_gateway, pool) -> None:
    gateway = make_gateway(sim.url, GRACEFUL_TIMEOUT="3")
    sim.control("config", node_delay_ms=1000)
    future = _start(pool, gateway, {"workflow_data": chain(0x909090, blur=10)})
    prompt_id = until(lambda: running_id(sim))
    gateway.proc.send_signal(signal.SIGTERM)
    response = future.result(30)
    assert response.status_code == 503
    assert response.json()["prompt_id"] == prompt_id


def test_worker_exit_closes_the_gateway(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url)
    until(lambda: sim.stats()["ws_open"] == 1)
    assert gateway.proc is not None
    gateway.proc.send_signal(signal.SIGTERM)
    gateway.proc.wait(20)
    assert "Gateway closed (pid:" in gateway.logs()
