"""Health, workflows, status and history endpoints, through real gunicorn."""

from __future__ import annotations

import os
import re
import time
from urllib.parse import unquote

import pytest

from .harness import Gateway, Simulator, chain
from .pictures import inverted, pixel, png

pytestmark = pytest.mark.e2e


def _wait_status(gateway: Gateway, prompt_id: str, wanted: str, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = gateway.get(f"/api/task_status/{prompt_id}").json()
        if body["status"] == wanted:
            return body
        time.sleep(0.05)
    raise AssertionError(f"{prompt_id} never reached {wanted}: {body}")


def test_test_comfy_reports_system_stats(shared_sim: Simulator, shared_gateway: Gateway) -> None:
    body = shared_gateway.get("/api/test_comfy").json()
    assert body["status"] == "success"
    assert body["comfyui_url"] == f"{shared_sim.url}/system_stats"
    assert body["response"]["system_stats"]["system"]["comfyui_version"].startswith(
        shared_sim.version[:3]
    )


def test_workflows_lists_stored_graphs(shared_gateway: Gateway) -> None:
    assert shared_gateway.get("/api/workflows").json() == {"workflows": ["invert", "text_to_size"]}


def test_workflow_submit_then_status_then_history(shared_gateway: Gateway) -> None:
    response = shared_gateway.post("/api/workflow/text_to_size", json={"prompt": "four"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    assert body["error"] is None
    assert body["node_errors"] == {}
    assert body["client_id"]
    prompt_id = body["prompt_id"]
    done = _wait_status(shared_gateway, prompt_id, "completed")
    assert done["execution_time"] is not None
    image = done["images"][0]
    assert image["url"].startswith("/api/view?")
    streamed = shared_gateway.get(image["url"])
    assert streamed.status_code == 200
    assert streamed.headers["Content-Type"] == "image/png"
    entry = shared_gateway.get(f"/api/history/{prompt_id}").json()
    assert entry["status"] == "completed"
    assert entry["images"] == done["images"]
    images = shared_gateway.get(f"/api/image/{prompt_id}").json()
    assert images["status"] == "success"
    assert images["images"] == done["images"]
    recent = shared_gateway.get("/api/history?max_items=50").json()["history"]
    assert prompt_id in [item["prompt_id"] for item in recent]


def test_workflow_advanced_body_patches_nodes(shared_gateway: Gateway) -> None:
    body = {"6": {"inputs": {"height": 3}}}
    prompt_id = shared_gateway.post("/api/workflow/text_to_size", json=body).json()["prompt_id"]
    done = _wait_status(shared_gateway, prompt_id, "completed")
    assert done["images"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prompt": "x", "target_node": "41"}, "Target node 41 is not a text input node"),
        ({"prompt": "x", "target_node": 999}, "Target node 999 is not a text input node"),
    ],
)
def test_workflow_target_errors_are_exact(shared_gateway: Gateway, body, message) -> None:
    response = shared_gateway.post("/api/workflow/text_to_size", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == message
    assert response.json()["prompt_id"] is None


def test_workflow_without_text_node_is_exact(shared_gateway: Gateway) -> None:
    response = shared_gateway.post("/api/workflow/invert", json={"prompt": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "No suitable text input node found in workflow"


def test_unknown_workflow_is_404(shared_gateway: Gateway) -> None:
    response = shared_gateway.post("/api/workflow/nothing_here", json={"prompt": "x"})
    assert response.status_code == 404


def test_task_status_not_found(shared_gateway: Gateway) -> None:
    body = shared_gateway.get("/api/task_status/00000000-0000-4000-8000-000000000000").json()
    assert body["status"] == "not_found"


def test_history_of_unknown_prompt_is_404(shared_gateway: Gateway) -> None:
    response = shared_gateway.get("/api/history/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert shared_gateway.get("/api/image/00000000-0000-4000-8000-000000000000").status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "filename=../x.png&type=output",
        "filename=a.png&type=input",
        "filename=a.png&subfolder=../..",
        "filename=a.png%20%5Binput%5D&type=output",  # "a.png [input]": ComfyUI's input folder
        "filename=a.png[temp]",
        "filename=a.png&subfolder=x:y",
        "filename=..",
        "",
    ],
)
def test_view_refuses_traversal(shared_gateway: Gateway, query: str) -> None:
    assert shared_gateway.get(f"/api/view?{query}").status_code == 400


def test_view_of_missing_file_is_404(shared_gateway: Gateway) -> None:
    assert shared_gateway.get("/api/view?filename=none.png&type=output").status_code == 404


def test_unknown_route_is_json_404(shared_gateway: Gateway) -> None:
    response = shared_gateway.get("/api/nothing")
    assert response.status_code == 404
    assert response.json()["status_code"] == 404


def test_task_status_pending_and_running(sim: Simulator, make_gateway) -> None:
    sim.control("config", node_delay_ms=400)
    gateway = make_gateway(sim.url)
    first = gateway.post("/api/workflow/invert", json={}).json()["prompt_id"]
    second = gateway.post("/api/workflow/invert", json={}).json()["prompt_id"]
    running = _wait_status(gateway, first, "running")
    assert running["prompt_id"] == first
    pending = gateway.get(f"/api/task_status/{second}").json()
    assert pending["status"] == "pending"
    assert pending["queue_position"] == 0
    _wait_status(gateway, second, "completed")


def test_test_comfy_when_comfy_is_down(make_gateway) -> None:
    gateway = make_gateway("http://127.0.0.1:9", COMFYUI_RETRIES="0")
    response = gateway.get("/api/test_comfy")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert "unreachable" in body["error"]
    generate = gateway.post("/api/generate", json={"workflow": "invert"})
    assert generate.status_code == 503


def test_api_keys_guard_every_api_route(shared_sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(shared_sim.url, API_KEYS="alpha,beta")
    assert gateway.get("/api/workflows").status_code == 401
    wrong = gateway.get("/api/workflows", headers={"Authorization": "Bearer gamma"})
    assert wrong.status_code == 401
    assert wrong.json()["error_type"] == "unauthorized"
    ok = gateway.get("/api/workflows", headers={"Authorization": "Bearer beta"})
    assert ok.status_code == 200
    generate = gateway.post(
        "/api/generate", json={"workflow": "invert"}, headers={"Authorization": "Bearer alpha"}
    )
    assert generate.status_code == 200
    assert gateway.get(generate.json()["url"]).status_code == 200  # stored files are public


def _disposition_name(header: str) -> str:
    """The file name of a Content-Disposition we built, checked against RFC 6266's grammar."""
    found = re.fullmatch(
        r"(?:inline|attachment); filename=\"([\x20\x21\x23-\x5b\x5d-\x7e]*)\""
        r"(?:; filename\*=UTF-8''([A-Za-z0-9!#$&+.^_`|~%-]+))?",
        header,
    )
    assert found, header
    return unquote(found[2]) if found[2] else found[1]


@pytest.mark.parametrize("name", ['a"; filename=evil.html; x=".png', "zürich 東京.png"])
def test_view_names_any_file_safely(
    shared_gateway: Gateway, shared_sim: Simulator, name: str
) -> None:
    folder = os.path.join(shared_sim.workdir, "data", "output")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as handle:
        handle.write(png((2, 2), (1, 2, 3)))
    response = shared_gateway.get("/api/view", params={"filename": name, "type": "output"})
    assert response.status_code == 200, response.text
    assert _disposition_name(response.headers["Content-Disposition"]) == name


def test_a_linked_filename_prefix_cannot_name_the_download(shared_gateway: Gateway) -> None:
    graph = chain(0x405060)
    graph["9"] = {
        "class_type": "PrimitiveString",
        "inputs": {"value": 'x"; filename=evil.html; y="'},
    }
    graph["3"]["inputs"]["filename_prefix"] = ["9", 0]
    response = shared_gateway.post("/api/generate_file", json={"workflow_data": graph})
    assert response.status_code == 200, response.text
    name = _disposition_name(response.headers["Content-Disposition"])
    assert name.endswith(".png") and "evil" not in name
    assert pixel(response.content) == inverted(0x405060)
