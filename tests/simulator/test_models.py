"""The simulator's model files: the starter workflows' checkpoints, and nothing else."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import requests

from comfysync.routing import models_of
from comfysync.simulator import SimulatorThread

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKFLOWS = os.path.join(ROOT, "workflows")


def starter_models() -> list[str]:
    """Every model file a graph in `workflows/` loads."""
    found: set[str] = set()
    for entry in os.listdir(WORKFLOWS):
        if entry.endswith(".json") and not entry.endswith(".params.json"):
            with open(os.path.join(WORKFLOWS, entry), encoding="utf-8") as handle:
                found |= models_of(json.load(handle))
    return sorted(found)


def txt2img(ckpt_name: str) -> dict:
    return {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 1,
                "steps": 2,
                "cfg": 8.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["6", 0],
                "latent_image": ["5", 0],
            },
        },
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt_name}},
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a horse", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "t"}},
    }


@pytest.fixture(scope="module", params=["0.3.64", "0.27"])
def sim(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with SimulatorThread(version=request.param, data_dir=str(tmp_path_factory.mktemp("s"))) as s:
        yield s


def _submit(sim: SimulatorThread, graph: dict) -> requests.Response:
    return requests.post(f"{sim.url}/prompt", json={"prompt": graph}, timeout=10)


def test_the_starter_workflows_load_models() -> None:
    assert "v1-5-pruned-emaonly.safetensors" in starter_models()  # the scan finds them


@pytest.mark.parametrize("name", [*starter_models(), "random-sd15.safetensors"])
def test_the_starter_checkpoints_are_there(sim: SimulatorThread, name: str) -> None:
    assert name in requests.get(f"{sim.url}/models/checkpoints", timeout=10).json()
    info = requests.get(f"{sim.url}/object_info/CheckpointLoaderSimple", timeout=10).json()
    assert name in info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    response = _submit(sim, txt2img(name))
    assert response.status_code == 200, response.text


def test_any_other_checkpoint_is_still_refused(sim: SimulatorThread) -> None:
    response = _submit(sim, txt2img("v1-5-pruned-emaonly.ckpt"))
    assert response.status_code == 400
    error = response.json()["node_errors"]["4"]["errors"][0]
    assert error["type"] == "value_not_in_list"
    assert error["extra_info"]["received_value"] == "v1-5-pruned-emaonly.ckpt"


def test_without_extra_models_it_is_the_captured_server(tmp_path) -> None:
    with SimulatorThread(data_dir=str(tmp_path), models={}) as bare:
        listed = requests.get(f"{bare.url}/models/checkpoints", timeout=10).json()
        assert listed == ["random-sd15.safetensors"]
        assert _submit(bare, txt2img("v1-5-pruned-emaonly.safetensors")).status_code == 400
