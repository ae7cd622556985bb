"""Nodes named by title (`_meta.title`) in patches, `target_node` and `output_node_id`."""

from __future__ import annotations

from typing import Any

import pytest

from comfysync.errors import BadRequest
from comfysync.workflows import patching


def titled_graph() -> dict[str, Any]:
    """An SD graph as ComfyUI's "Export (API)" writes it: every node titled."""

    def node(class_type: str, title: str, **inputs: Any) -> dict[str, Any]:
        return {"class_type": class_type, "inputs": inputs, "_meta": {"title": title}}

    return {
        "3": node("KSampler", "KSampler", seed=5, steps=20, positive=["6", 0], negative=["7", 0]),
        "4": node("CheckpointLoaderSimple", "Load Checkpoint", ckpt_name="x.safetensors"),
        "6": node("CLIPTextEncode", "Positive", text="pos", clip=["4", 1]),
        "7": node("CLIPTextEncode", "Negative", text="neg", clip=["4", 1]),
        "9": node("SaveImage", "Save Image", images=["8", 0], filename_prefix="ComfyUI"),
        "10": node("SaveImage", "Preview", images=["8", 0], filename_prefix="ComfyUI"),
        "11": node("SaveImage", "Preview", images=["8", 0], filename_prefix="ComfyUI"),
        "12": node("PrimitiveString", "3", value="titled like node 3"),
    }


def test_patch_by_title() -> None:
    graph = titled_graph()
    patching.apply_patches(graph, {"KSampler": {"inputs": {"steps": 4}}})
    assert graph["3"]["inputs"]["steps"] == 4
    assert graph["3"]["inputs"]["seed"] == 5


def test_an_id_wins_over_a_title() -> None:
    graph = titled_graph()
    patching.apply_patches(graph, {"3": {"inputs": {"steps": 7}}})
    assert graph["3"]["inputs"]["steps"] == 7
    assert "steps" not in graph["12"]["inputs"]
    assert patching.check_output_node(graph, "3") == "3"


def test_prompt_by_target_title() -> None:
    graph = titled_graph()
    assert patching.apply_prompt(graph, "a fox", target_node="Negative") == "7"
    assert graph["7"]["inputs"]["text"] == "a fox"
    assert graph["6"]["inputs"]["text"] == "pos"


def test_output_node_by_title() -> None:
    assert patching.check_output_node(titled_graph(), "Save Image") == "9"


@pytest.mark.parametrize(
    ("apply", "field"),
    [
        (lambda g: patching.apply_patches(g, {"Preview": {"inputs": {"x": 1}}}), "patches"),
        (lambda g: patching.check_output_node(g, "Preview"), "output_node_id"),
    ],
)
def test_an_ambiguous_title_names_the_candidates(apply: Any, field: str) -> None:
    graph = titled_graph()
    with pytest.raises(BadRequest) as caught:
        apply(graph)
    body = caught.value.to_dict()
    assert caught.value.code == 400
    assert body["field"] == field
    assert body["candidates"] == ["10", "11"]
    assert "10, 11" in body["error"]
    assert "x" not in graph["10"]["inputs"] and "x" not in graph["11"]["inputs"]


def test_an_ambiguous_target_title_is_refused() -> None:
    graph = titled_graph()
    graph["7"]["_meta"]["title"] = "Positive"
    with pytest.raises(BadRequest) as caught:
        patching.apply_prompt(graph, "x", target_node="Positive")
    assert caught.value.to_dict()["field"] == "target_node"
    assert caught.value.to_dict()["candidates"] == ["6", "7"]
    assert graph["6"]["inputs"]["text"] == "pos"


@pytest.mark.parametrize(
    ("apply", "field", "message"),
    [
        (
            lambda g: patching.apply_patches(g, {"Nope": {"inputs": {}}}),
            "patches",
            "Patch for node Nope, which is not in the workflow",
        ),
        (
            lambda g: patching.apply_prompt(g, "x", target_node="Nope"),
            "target_node",
            "Target node Nope is not a text input node",
        ),
        (
            lambda g: patching.check_output_node(g, "Nope"),
            "output_node_id",
            "output_node_id Nope is not a node of the workflow",
        ),
    ],
)
def test_an_unknown_title_names_the_field(apply: Any, field: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        apply(titled_graph())
    assert caught.value.message == message
    assert caught.value.to_dict()["field"] == field


def test_a_title_of_a_node_that_takes_no_text_is_refused_as_target() -> None:
    with pytest.raises(BadRequest) as caught:
        patching.apply_prompt(titled_graph(), "x", target_node="Load Checkpoint")
    assert caught.value.message == "Target node Load Checkpoint is not a text input node"


def test_titles_are_matched_exactly() -> None:
    with pytest.raises(BadRequest):
        patching.check_output_node(titled_graph(), "save image")
