"""Checks against a real ComfyUI; they run only when LIVE_COMFYUI_URL points at one."""

from __future__ import annotations

import io
import os
import time

import pytest
from PIL import Image

from tests.e2e.harness import Gateway, chain

LIVE_URL = os.environ.get("LIVE_COMFYUI_URL", "")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not LIVE_URL, reason="set LIVE_COMFYUI_URL to a running ComfyUI"),
]


@pytest.fixture(scope="module")
def gateway():
    started = Gateway(LIVE_URL).start()
    yield started
    started.stop()


def test_generate_file_against_real_comfyui(gateway: Gateway) -> None:
    response = gateway.post("/api/generate_file", json={"workflow_data": chain(0x0A0B0C)})
    assert response.status_code == 200, response.text
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.convert("RGB").getpixel((0, 0)) == (245, 244, 243)


def test_cached_resubmit_still_returns_a_fresh_file(gateway: Gateway) -> None:
    graph = chain(0x0D0E0F)
    first = gateway.post("/api/generate", json={"workflow_data": graph}).json()
    second = gateway.post("/api/generate", json={"workflow_data": graph}).json()
    assert first["url"] != second["url"]
    assert gateway.get(second["url"]).status_code == 200


def test_validation_and_execution_errors(gateway: Gateway) -> None:
    graph = chain()
    graph["1"]["inputs"]["width"] = -5
    invalid = gateway.post("/api/generate", json={"workflow_data": graph})
    assert invalid.status_code == 400
    assert invalid.json()["node_errors"]["1"]["errors"][0]["type"] == "value_smaller_than_min"
    graph = chain()
    graph["5"] = {"class_type": "ImageToMask", "inputs": {"image": ["1", 0], "channel": "alpha"}}
    graph["6"] = {"class_type": "MaskToImage", "inputs": {"mask": ["5", 0]}}
    graph["3"]["inputs"]["images"] = ["6", 0]
    failed = gateway.post("/api/generate", json={"workflow_data": graph})
    assert failed.status_code == 422
    assert failed.json()["node_type"] == "ImageToMask"


def test_submit_and_poll_status(gateway: Gateway) -> None:
    prompt_id = gateway.post("/api/workflow/invert", json={}).json()["prompt_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = gateway.get(f"/api/task_status/{prompt_id}").json()
        if status["status"] == "completed":
            break
        time.sleep(0.1)
    assert status["status"] == "completed"
    assert gateway.get(status["images"][0]["url"]).status_code == 200
