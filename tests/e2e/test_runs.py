"""Runs: the async API, the gateway's queue, and sync requests recorded as runs."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .harness import Gateway, Simulator, chain, running_id, send_and_abandon, until
from .pictures import inverted, pixel

pytestmark = pytest.mark.e2e

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TERMINAL = {"success", "failed", "cancelled"}


def _status(gateway: Gateway, run_id: str) -> dict:
    response = gateway.get(f"/api/status/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _finished(gateway: Gateway, run_id: str, timeout: float = 30) -> dict:
    return until(lambda: (body := _status(gateway, run_id))["status"] in TERMINAL and body, timeout)


def _run(gateway: Gateway, body: dict, **kwargs) -> str:
    response = gateway.post("/api/run", json=body, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()["run_id"]


def _executed_prompts(sim: Simulator) -> list[str]:
    """Prompt ids in the order the simulator finished them (it runs one at a time)."""
    return list(sim.get("/history").keys())


def test_async_run_succeeds_with_the_seed_shape(shared_gateway: Gateway) -> None:
    response = shared_gateway.post("/api/run", json={"workflow_data": chain(0x224466)})
    assert response.status_code == 201
    assert set(response.json()) == {"run_id"}
    run_id = response.json()["run_id"]
    body = _finished(shared_gateway, run_id)
    assert body["status"] == "success", body
    assert body["id"] == body["run_id"] == run_id
    for key in ("started_at", "ended_at", "created_at"):
        assert ISO_UTC.match(body[key]), (key, body[key])
    assert isinstance(body["duration"], float) and body["duration"] >= 0
    assert body["error"] is None
    assert body["progress"]["current"] == body["progress"]["total"] > 0
    assert isinstance(body["progress"]["message"], str)
    assert body["prompt_id"]
    assert len(body["outputs"]) == 1
    image = body["outputs"][0]["images"][0]
    assert set(image) >= {"url", "type", "filename", "subfolder", "upload_duration"}
    assert image["type"] == "output"
    assert ISO_UTC.match(body["outputs"][0]["created_at"])
    assert body["images"][0]["url"] == image["url"] == body["url"]
    assert set(body["timings"]) >= {"queued", "executed", "fetched", "stored", "total"}
    served = shared_gateway.get(image["url"])
    assert served.status_code == 200
    assert pixel(served.content) == inverted(0x224466)


def test_seed_001_task_aliases(shared_gateway: Gateway) -> None:
    response = shared_gateway.post("/api/tasks/create", json={"workflow_data": chain(0x102030)})
    assert response.status_code == 201
    task_id = response.json()["task_id"]
    _finished(shared_gateway, task_id)
    body = shared_gateway.get(f"/api/tasks/{task_id}").json()
    assert body["status"] == "success" and body["id"] == task_id
    legacy = shared_gateway.get(f"/api/task_status/{task_id}").json()
    assert legacy["status"] == "completed" and legacy["run_id"] == task_id
    assert legacy["prompt_id"] == body["prompt_id"]


def test_deployment_id_names_a_stored_workflow(shared_gateway: Gateway) -> None:
    run_id = _run(shared_gateway, {"deployment_id": "invert"})
    assert _finished(shared_gateway, run_id)["status"] == "success"


def test_unknown_run_is_404_json(shared_gateway: Gateway) -> None:
    for path in ("/api/status/nope", "/api/tasks/nope", "/api/run/nope/cancel"):
        response = (
            shared_gateway.post(path) if path.endswith("cancel") else shared_gateway.get(path)
        )
        assert response.status_code == 404
        assert response.json()["error_type"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"workflow_data": chain(), "priority": "high"}, "priority"),
        ({"workflow_data": chain(), "priority": 10**30}, "priority"),
        ({"workflow_data": chain(), "wait": "soon"}, "wait"),
        ({"workflow_data": chain(), "wait": -1}, "wait"),
    ],
)
def test_bad_run_options_are_400(shared_gateway: Gateway, body: dict, field: str) -> None:
    for path in ("/api/run", "/api/generate"):
        if path == "/api/run" and field == "wait":
            continue
        response = shared_gateway.post(path, json=body)
        assert response.status_code == 400, response.text
        assert field in response.json()["error"]


def test_failed_run_records_the_node_error(shared_gateway: Gateway) -> None:
    graph = chain()
    graph["5"] = {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "alpha"}}
    graph["6"] = {"class_type": "MaskToImage", "inputs": {"mask": ["5", 0]}}
    graph["3"]["inputs"]["images"] = ["6", 0]
    body = _finished(shared_gateway, _run(shared_gateway, {"workflow_data": graph}))
    assert body["status"] == "failed"
    assert body["error"] and body["error_type"] == "execution_error"
    assert body["error_details"]["node_id"] == "5"
    assert body["attempts"] == 1  # node errors are never retried
    assert body["outputs"] == []


def test_validation_error_fails_the_run_with_comfyuis_details(shared_gateway: Gateway) -> None:
    graph = chain()
    graph["1"]["inputs"]["width"] = -5
    body = _finished(shared_gateway, _run(shared_gateway, {"workflow_data": graph}))
    assert body["status"] == "failed"
    assert body["error_details"]["node_errors"]["1"]["errors"][0]["type"]


def test_idempotency_key(shared_gateway: Gateway) -> None:
    body = {"workflow_data": chain(0x0C0C0C)}
    headers = {"Idempotency-Key": f"key-{time.time()}"}
    first = shared_gateway.post("/api/run", json=body, headers=headers)
    again = shared_gateway.post("/api/run", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["run_id"] == again.json()["run_id"]
    other = shared_gateway.post("/api/run", json={"workflow_data": chain(1)}, headers=headers)
    assert other.status_code == 409
    assert other.json()["error_type"] == "idempotency_conflict"


def test_sync_answers_carry_the_run_id(shared_gateway: Gateway) -> None:
    response = shared_gateway.post("/api/generate", json={"workflow_data": chain(0x0D0D0D)})
    assert response.status_code == 200
    run_id = response.json()["run_id"]
    assert _status(shared_gateway, run_id)["url"] == response.json()["url"]
    file = shared_gateway.post("/api/generate_file", json={"workflow_data": chain(0x0E0E0E)})
    assert file.status_code == 200
    record = _status(shared_gateway, file.headers["X-Run-Id"])
    assert record["status"] == "success"
    assert record["prompt_id"] == file.headers["X-Prompt-Id"]


def test_runs_list_pages_newest_first(shared_gateway: Gateway) -> None:
    ids = [_run(shared_gateway, {"workflow_data": chain(i)}) for i in range(5)]
    for run_id in ids:
        _finished(shared_gateway, run_id)
    seen: list[str] = []
    cursor = None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = shared_gateway.get("/api/runs" + query).json()
        assert len(page["runs"]) <= 2
        seen += [run["run_id"] for run in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    newest = [run_id for run_id in seen if run_id in ids]
    assert newest == list(reversed(ids))
    succeeded = shared_gateway.get("/api/runs?status=success&limit=100").json()["runs"]
    assert {r["status"] for r in succeeded} == {"success"}
    assert shared_gateway.get("/api/runs?status=nope").status_code == 400
    assert shared_gateway.get("/api/runs?limit=0").status_code == 400


def test_pass_through_for_operators(shared_gateway: Gateway) -> None:
    queue = shared_gateway.get("/api/comfyui-queue-status").json()
    assert set(queue) >= {"queue_running", "queue_pending"}
    stats = shared_gateway.get("/api/comfyui-system-stats").json()
    assert "system" in stats
    assert shared_gateway.post("/api/comfyui-interrupt").status_code == 200


# -- the gateway's queue ---------------------------------------------------------


def test_queued_runs_wait_with_the_gateway_in_priority_order(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url, COMFYUI_MAX_INFLIGHT="1")
    sim.control("config", node_delay_ms=300)
    blocker = _run(gateway, {"workflow_data": chain(0x111111, blur=2)})
    until(lambda: running_id(sim))
    low = _run(gateway, {"workflow_data": chain(1), "priority": -5})
    first_normal = _run(gateway, {"workflow_data": chain(2)})
    second_normal = _run(gateway, {"workflow_data": chain(3)})
    high = _run(gateway, {"workflow_data": chain(4), "priority": 10})
    # Only one prompt at a time reaches ComfyUI: the rest wait with us.
    assert sim.get("/queue")["queue_pending"] == []
    queued = _status(gateway, low)
    assert queued["status"] == "not-started" and queued["queue_position"] == 3
    assert _status(gateway, high)["queue_position"] == 0
    order = [blocker, high, first_normal, second_normal, low]
    prompts = [_finished(gateway, run_id, 60)["prompt_id"] for run_id in order]
    assert _executed_prompts(sim)[-5:] == prompts


def test_cancel_while_queued_never_reaches_comfyui(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url, COMFYUI_MAX_INFLIGHT="1")
    sim.control("config", node_delay_ms=300)
    blocker = _run(gateway, {"workflow_data": chain(0x121212, blur=2)})
    until(lambda: running_id(sim))
    queued = _run(gateway, {"workflow_data": chain(0x131313)})
    response = gateway.post(f"/api/run/{queued}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert _finished(gateway, blocker)["status"] == "success"
    time.sleep(0.5)
    record = _status(gateway, queued)
    assert record["status"] == "cancelled" and record["prompt_id"] is None
    assert len(sim.get("/history")) == 1


def test_cancel_while_running_interrupts_comfyui(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url)
    sim.control("config", node_delay_ms=500)
    run_id = _run(gateway, {"workflow_data": chain(0x141414, blur=8)})
    prompt_id = until(lambda: running_id(sim))
    assert gateway.post(f"/api/run/{run_id}/cancel").json()["status"] == "cancelled"
    entry = until(lambda: sim.get(f"/history/{prompt_id}").get(prompt_id), timeout=5)
    assert "execution_interrupted" in [m[0] for m in entry["status"]["messages"]]
    assert _status(gateway, run_id)["status"] == "cancelled"


def test_wait_budget_hands_off_with_202(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url)
    sim.control("config", node_delay_ms=400)
    started = time.monotonic()
    response = gateway.post(
        "/api/generate", json={"workflow_data": chain(0x151515, blur=4), "wait": 0.5}
    )
    assert response.status_code == 202, response.text
    assert time.monotonic() - started < 5
    run_id = response.json()["run_id"]
    assert response.headers["Location"] == f"/api/status/{run_id}"
    assert response.json()["status"] in ("not-started", "running")
    body = _finished(gateway, run_id)
    assert body["status"] == "success"
    assert pixel(gateway.get(body["url"]).content) == inverted(0x151515)
    prefer = gateway.post(
        "/api/generate_file",
        json={"workflow_data": chain(0x161616, blur=4)},
        headers={"Prefer": "respond-async, wait=0"},
    )
    assert prefer.status_code == 202
    assert _finished(gateway, prefer.json()["run_id"])["status"] == "success"


def test_full_queue_is_429_with_retry_after(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url, COMFYUI_MAX_INFLIGHT="1", MAX_QUEUED_RUNS="2")
    sim.control("config", node_delay_ms=300)
    _run(gateway, {"workflow_data": chain(0x171717, blur=3)})
    until(lambda: running_id(sim))
    _run(gateway, {"workflow_data": chain(1)})
    _run(gateway, {"workflow_data": chain(2)})
    for path in ("/api/run", "/api/generate"):
        response = gateway.post(path, json={"workflow_data": chain(3)})
        assert response.status_code == 429, response.text
        assert response.json()["error_type"] == "queue_full"
        assert response.headers["Retry-After"].isdigit()
        assert int(response.headers["Retry-After"]) >= 1


def test_client_leaving_does_not_cancel_when_told_not_to(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url, CANCEL_ON_DISCONNECT="false")
    sim.control("config", node_delay_ms=300)
    raw = send_and_abandon(gateway, {"workflow_data": chain(0x181818, blur=3)})
    until(lambda: running_id(sim))
    raw.close()
    runs = until(lambda: gateway.get("/api/runs?status=success").json()["runs"], timeout=20)
    assert pixel(gateway.get(runs[0]["url"]).content) == inverted(0x181818)


def test_client_leaving_cancels_its_run_by_default(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url)
    sim.control("config", node_delay_ms=500)
    raw = send_and_abandon(gateway, {"workflow_data": chain(0x191919, blur=8)})
    until(lambda: running_id(sim))
    raw.close()
    runs = until(lambda: gateway.get("/api/runs?status=cancelled").json()["runs"], timeout=10)
    assert runs[0]["status"] == "cancelled"


def test_comfyui_restart_mid_job_is_retried(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url, RUN_RETRY_BASE="0.2")
    sim.control("config", node_delay_ms=400)
    run_id = _run(gateway, {"workflow_data": chain(0x1A1A1A, blur=5)})
    until(lambda: running_id(sim))
    sim.control("restart", down_seconds=1)
    body = _finished(gateway, run_id, 60)
    assert body["status"] == "success", body
    assert body["attempts"] == 2
    assert pixel(gateway.get(body["url"]).content) == inverted(0x1A1A1A)


def test_two_workers_share_the_queue(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url, workers=2, COMFYUI_MAX_INFLIGHT="1")
    sim.control("config", node_delay_ms=20)

    def sync(color: int) -> tuple[int, tuple[int, ...]]:
        response = gateway.post("/api/generate_file", json={"workflow_data": chain(color)})
        assert response.status_code == 200, response.text + "\n" + gateway.logs()[-4000:]
        return color, pixel(response.content)

    with ThreadPoolExecutor(16) as pool:
        async_ids = [_run(gateway, {"workflow_data": chain(0x200000 + i)}) for i in range(10)]
        results = list(pool.map(sync, range(0x300000, 0x300000 + 20)))
    for color, seen in results:
        assert seen == inverted(color)
    for run_id in async_ids:
        assert _finished(gateway, run_id)["status"] == "success"
    # COMFYUI_MAX_INFLIGHT counts across both workers: ComfyUI never held two at once.
    assert sim.stats()["queue_depth_max"] == 1


def test_finished_runs_are_pruned_after_retention(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url, RUN_RETENTION_HOURS="0.0005")  # 1.8 s
    run_id = _run(gateway, {"workflow_data": chain(0x1B1B1B)})
    assert _finished(gateway, run_id)["status"] == "success"
    until(lambda: gateway.get(f"/api/status/{run_id}").status_code == 404, timeout=15)
