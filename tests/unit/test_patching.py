"""Patching graphs: prompt targeting, patches, seeds and unique output prefixes."""

from __future__ import annotations

import random

import pytest

from comfysync.errors import BadRequest
from comfysync.workflows import patching


def sd_graph() -> dict:
    return {
        "3": {
            "class_type": "KSampler",
            "inputs": {"seed": 5, "positive": ["6", 0], "negative": ["7", 0]},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "pos", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "neg", "clip": ["4", 1]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x"}},
        "9": {
            "class_type": "SaveImage",
            "inputs": {"images": ["8", 0], "filename_prefix": "ComfyUI"},
        },
    }


def test_prompt_goes_to_the_positive_text_node_even_if_not_first() -> None:
    graph = sd_graph()
    graph["2"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "other", "clip": ["4", 1]}}
    assert patching.apply_prompt(graph, "a cat") == "6"
    assert graph["6"]["inputs"]["text"] == "a cat"
    assert graph["2"]["inputs"]["text"] == "other"


def test_prompt_follows_conditioning_nodes_upstream() -> None:
    graph = sd_graph()
    graph["10"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["7", 0]}}
    graph["3"]["inputs"]["positive"] = ["10", 0]
    assert patching.find_text_node(graph) == "7"


def test_explicit_target_node() -> None:
    graph = sd_graph()
    patching.apply_prompt(graph, "bad", target_node=7)
    assert graph["7"]["inputs"]["text"] == "bad"


@pytest.mark.parametrize("target", ["3", "41"])
def test_target_that_is_not_a_text_node(target: str) -> None:
    with pytest.raises(BadRequest) as caught:
        patching.apply_prompt(sd_graph(), "x", target_node=target)
    assert caught.value.message == f"Target node {target} is not a text input node"


def test_no_text_node() -> None:
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8}}}
    with pytest.raises(BadRequest) as caught:
        patching.apply_prompt(graph, "x")
    assert caught.value.message == "No suitable text input node found in workflow"


def test_plain_string_widget_counts_as_text_node() -> None:
    graph = {"1": {"class_type": "Text Multiline", "inputs": {"text": ""}}}
    patching.apply_prompt(graph, "hi")
    assert graph["1"]["inputs"]["text"] == "hi"


def test_sdxl_encoder_gets_both_texts() -> None:
    graph = {"1": {"class_type": "CLIPTextEncodeSDXL", "inputs": {"text_g": "", "text_l": ""}}}
    patching.apply_prompt(graph, "hi")
    assert graph["1"]["inputs"] == {"text_g": "hi", "text_l": "hi"}


def test_patches_merge_inputs_and_refuse_unknown_nodes() -> None:
    graph = sd_graph()
    patching.apply_patches(graph, {"3": {"inputs": {"steps": 4}}, 9: {"inputs": {"x": 1}}})
    assert graph["3"]["inputs"]["steps"] == 4 and graph["3"]["inputs"]["seed"] == 5
    assert graph["9"]["inputs"]["x"] == 1
    with pytest.raises(BadRequest, match="not in the workflow"):
        patching.apply_patches(graph, {"99": {"inputs": {}}})
    with pytest.raises(BadRequest, match="inputs"):
        patching.apply_patches(graph, {"3": {"steps": 4}})


def test_randomize_seeds_changes_literal_seeds_only() -> None:
    graph = sd_graph()
    graph["3"]["inputs"]["noise_seed"] = ["12", 0]
    patching.randomize_seeds(graph, random.Random(1))
    assert graph["3"]["inputs"]["seed"] != 5
    assert 0 <= graph["3"]["inputs"]["seed"] <= patching.MAX_SEED
    assert graph["3"]["inputs"]["noise_seed"] == ["12", 0]


def test_output_prefix_is_unique_rotating_and_ends_in_letters() -> None:
    graph = sd_graph()
    assert patching.prefix_outputs(graph, "1b4e28ba-2fa1-11d2-883f-0016d3cca427") == ["9"]
    prefix = graph["9"]["inputs"]["filename_prefix"]
    folder, _, name = prefix.rpartition("/")
    assert folder.startswith("comfysync/") and folder.endswith("/1b")
    assert "1b4e28ba2fa111d2883f0016d3cca427" in name
    assert not name[-1].isdigit()
    later = patching.output_prefix("1b4e28ba-2fa1-11d2-883f-0016d3cca427", "9", now=10**10)
    assert later.split("/")[1] != folder.split("/")[1]


@pytest.mark.parametrize(
    ("graph", "fragment"),
    [
        ({}, "non-empty"),
        ([], "non-empty"),
        ({"nodes": [], "links": [], "x": 1}, "UI format"),
        ({"1": {"inputs": {}}}, "class_type"),
        ({"1": {"class_type": "A", "inputs": []}}, "inputs"),
    ],
)
def test_check_graph_rejects(graph, fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment):
        patching.check_graph(graph)
