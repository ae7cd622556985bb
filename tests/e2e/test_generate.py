"""The synchronous endpoints against the simulator, through real gunicorn."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .harness import Gateway, Simulator, chain
from .pictures import inverted, pixel

pytestmark = pytest.mark.e2e


def test_generate_returns_url_of_a_real_image(shared_gateway: Gateway) -> None:
    response = shared_gateway.post("/api/generate", json={"workflow_data": chain(0x336699)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["url"] == body["images"][0]["url"]
    assert body["url"].startswith("/output_images/")
    image = body["images"][0]
    assert image["content_type"] == "image/png"
    assert (image["width"], image["height"]) == (32, 32)
    assert image["node_id"] == "3"
    assert set(body["timings"]) == {"queued", "executed", "fetched", "stored", "total"}
    served = shared_gateway.get(body["url"])
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert len(served.content) == image["bytes"]
    assert pixel(served.content) == inverted(0x336699)


def test_generate_file_streams_the_bytes(shared_gateway: Gateway) -> None:
    response = shared_gateway.post("/api/generate_file", json={"workflow_data": chain(0x010203)})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    assert pixel(response.content) == inverted(0x010203)


def test_response_type_file_on_generate(shared_gateway: Gateway) -> None:
    body = {"workflow_data": chain(0x0000FF), "response_type": "file"}
    response = shared_gateway.post("/api/generate", json=body)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert pixel(response.content) == inverted(0x0000FF)


def test_same_graph_twice_gives_two_fresh_files(shared_gateway: Gateway) -> None:
    graph = chain(0x445566)
    first = shared_gateway.post("/api/generate", json={"workflow_data": graph}).json()
    second = shared_gateway.post("/api/generate", json={"workflow_data": graph}).json()
    assert first["url"] != second["url"]
    assert shared_gateway.get(second["url"]).status_code == 200


def test_named_workflow_with_prompt_and_target_node(shared_gateway: Gateway) -> None:
    body = {"workflow": "text_to_size", "prompt": "abcdefghijklm", "target_node": "4"}
    response = shared_gateway.post("/api/generate", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["images"][0]["width"] == 13


def test_prompt_without_target_finds_the_text_node(shared_gateway: Gateway) -> None:
    response = shared_gateway.post(
        "/api/generate", json={"workflow": "text_to_size", "prompt": "abc"}
    )
    assert response.json()["images"][0]["width"] == 3


def test_patches_apply_before_prompt(shared_gateway: Gateway) -> None:
    body = {
        "workflow": "text_to_size",
        "patches": {"6": {"inputs": {"height": 5}}, "4": {"inputs": {"value": "xx"}}},
        "prompt": "seven!!",
    }
    image = shared_gateway.post("/api/generate", json=body).json()["images"][0]
    assert (image["width"], image["height"]) == (7, 5)


def test_first_image_is_by_output_node_id(shared_gateway: Gateway) -> None:
    graph = chain(0x000000)
    graph["10"] = {
        "class_type": "EmptyImage",
        "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 0},
    }
    graph["9"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["10", 0], "filename_prefix": "b"},
    }
    body = shared_gateway.post("/api/generate", json={"workflow_data": graph}).json()
    assert [img["node_id"] for img in body["images"]] == ["3", "9", "9"]
    assert body["url"] == body["images"][0]["url"]
    only = shared_gateway.post(
        "/api/generate", json={"workflow_data": graph, "output_node_id": 9}
    ).json()
    assert [img["width"] for img in only["images"]] == [8, 8]


def test_preview_only_graph_returns_the_preview(shared_gateway: Gateway) -> None:
    graph = chain(0x123456)
    graph["3"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    response = shared_gateway.post("/api/generate_file", json={"workflow_data": graph})
    assert response.status_code == 200
    assert pixel(response.content) == inverted(0x123456)


def test_fifty_concurrent_requests_each_get_their_own_image(shared_gateway: Gateway) -> None:
    def run(i: int) -> tuple[int, tuple[int, ...]]:
        color = 0x010101 * (i + 1)
        response = shared_gateway.post("/api/generate_file", json={"workflow_data": chain(color)})
        return color, pixel(response.content)

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(run, range(50)))
    for color, seen in results:
        assert seen == inverted(color)


def test_comfy_validation_error_passes_node_errors(shared_gateway: Gateway) -> None:
    graph = chain()
    graph["1"]["inputs"]["width"] = -5
    response = shared_gateway.post("/api/generate", json={"workflow_data": graph})
    assert response.status_code == 400
    body = response.json()
    assert body["error_type"] == "comfyui_validation_error"
    assert body["comfyui_error"]["type"] == "prompt_outputs_failed_validation"
    assert body["node_errors"]["1"]["errors"][0]["type"] == "value_smaller_than_min"
    assert body["status_code"] == 400


def test_execution_error_is_422_with_node_details(shared_gateway: Gateway) -> None:
    graph = chain()
    graph["5"] = {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "alpha"}}
    graph["6"] = {"class_type": "MaskToImage", "inputs": {"mask": ["5", 0]}}
    graph["3"]["inputs"]["images"] = ["6", 0]
    response = shared_gateway.post("/api/generate", json={"workflow_data": graph})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["node_id"] == "5"
    assert body["node_type"] == "ImageToMask"
    assert body["exception_type"]
    assert body["exception_message"]
    assert body["prompt_id"]
    # ComfyUI's traceback names its files; where it is installed stays private.
    assert body["traceback"] and all("/opt/ComfyUI" not in line for line in body["traceback"])
    assert any('File "' in line for line in body["traceback"])


def test_validation_errors_do_not_reveal_comfyui_paths(shared_gateway: Gateway) -> None:
    graph = chain()
    graph["3"]["inputs"]["images"] = ["42", 0]  # a link to no node: ComfyUI's traceback
    response = shared_gateway.post("/api/generate", json={"workflow_data": graph})
    assert response.status_code == 400
    text = response.text
    assert "execution.py" in text and "/opt/ComfyUI" not in text


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "exactly one of"),
        ({"workflow": "invert", "workflow_data": chain()}, "exactly one of"),
        ({"workflow_data": {"nodes": [], "links": []}}, "UI format"),
        ({"workflow_data": "nope"}, "non-empty object"),
        ({"workflow": "invert", "patches": {"99": {"inputs": {}}}}, "not in the workflow"),
        ({"workflow": "invert", "output_node_id": 77}, "output_node_id 77"),
        ({"workflow": "invert", "response_type": "zip"}, "response_type"),
        ({"workflow": "invert", "prompt": "x", "target_node": "2"}, "Target node 2 is not"),
        ({"workflow": "invert", "prompt": "x"}, "No suitable text input node"),
    ],
)
def test_bad_requests_are_400_with_a_reason(shared_gateway: Gateway, body, fragment) -> None:
    response = shared_gateway.post("/api/generate", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert response.json()["status_code"] == 400


@pytest.mark.parametrize("name", ["../invert", "..%2Finvert", "invert.params", "does_not_exist"])
def test_workflow_names_cannot_escape(shared_gateway: Gateway, name: str) -> None:
    response = shared_gateway.post("/api/generate", json={"workflow": name})
    assert response.status_code in (400, 404)
    assert "error" in response.json()


def test_body_over_max_content_length_is_413(shared_sim: Simulator, make_gateway) -> None:
    # A gateway of its own: while gunicorn reads the refused 51 MB, its worker answers
    # nothing else for ~2 s, which a shared gateway's WebSocket would count as a stall.
    gateway = make_gateway(shared_sim.url)
    big = {"workflow": "invert", "prompt": "x" * (51 << 20)}
    response = gateway.post("/api/generate", json=big)
    assert response.status_code == 413
    assert response.json()["status_code"] == 413


def test_not_json_is_400(shared_gateway: Gateway) -> None:
    response = shared_gateway.post(
        "/api/generate", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_one_websocket_for_many_requests(shared_sim: Simulator, shared_gateway: Gateway) -> None:
    before = shared_sim.stats()["ws_accepted_total"]
    for color in range(20):
        body = {"workflow_data": chain(color)}
        assert shared_gateway.post("/api/generate", json=body).status_code == 200
    # No socket per request: the worker's one socket served all 20 (a loaded
    # machine may make it reconnect once when a pong comes late).
    assert shared_sim.stats()["ws_accepted_total"] - before <= 1
    deadline = time.monotonic() + 10
    while shared_sim.stats()["ws_open"] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert shared_sim.stats()["ws_open"] == 1


def test_outputs_read_from_comfyui_disk_and_cleaned_up(sim: Simulator, make_gateway) -> None:
    comfy_output = os.path.join(sim.workdir, "data", "output")
    gateway = make_gateway(sim.url, COMFYUI_OUTPUT_DIR=comfy_output, COMFYUI_CLEANUP_OUTPUTS="true")
    response = gateway.post("/api/generate_file", json={"workflow_data": chain(0x0F0F0F)})
    assert response.status_code == 200
    assert pixel(response.content) == inverted(0x0F0F0F)
    left = [name for _, _, names in os.walk(comfy_output) for name in names]
    assert left == []  # ComfyUI's copy is gone once ours is stored


def test_browser_headers_are_not_forwarded_to_comfyui(shared_gateway: Gateway) -> None:
    # ComfyUI 0.27 refuses any request marked cross-site; the gateway must not pass it on.
    headers = {"Sec-Fetch-Site": "cross-site", "Origin": "https://elsewhere.example"}
    response = shared_gateway.post(
        "/api/generate", json={"workflow_data": chain(0x0A0A0A)}, headers=headers
    )
    assert response.status_code == 200, response.text
