"""ComfyUI's captured frames, as the run events a client streams."""

from __future__ import annotations

import json
from typing import Any

import pytest

from comfysync.events.frames import FrameEvents, progress_body
from tests.simulator.replay import load

VERSIONS = ("0.3.64", "0.27")


def _prompts(trace: dict[str, Any]) -> list[tuple[dict, list[tuple[str, dict]]]]:
    """Each POST /prompt of a trace (its graph) with the frames about its prompt id, in order."""
    posts = [e for e in trace["events"] if e.get("src") == "http" and e.get("path") == "/prompt"]
    out = []
    for post in posts:
        if post.get("status") != 200:
            continue
        prompt_id = post["response_json"]["prompt_id"]
        messages = [json.loads(e["raw"]) for e in trace["events"] if e.get("kind") == "text"]
        frames = [
            (m["type"], m["data"])
            for m in messages
            if isinstance(m.get("data"), dict) and m["data"].get("prompt_id") == prompt_id
        ]
        if frames:
            out.append((post["request_json"]["prompt"], frames))
    return out


def _events(graph: dict, frames: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    tracker = FrameEvents(graph)
    return [event for kind, data in frames for event in tracker.on_frame(kind, data)]


@pytest.mark.parametrize("version", VERSIONS)
def test_txt2img_counts_every_node_and_every_step(version: str) -> None:
    (graph, frames), *_ = _prompts(load(version, "ws_09_txt2img_random_sd15"))
    events = _events(graph, frames)
    kinds = [k for k, _ in events]
    assert kinds[0] == "started" and kinds[-1] == "executed"
    progress = [d for k, d in events if k == "progress"]
    assert {p["nodes_total"] for p in progress} == {7}
    assert [p["nodes_done"] for p in progress] == sorted(p["nodes_done"] for p in progress)
    assert progress[-1]["nodes_done"] == 6 and progress[-1]["node_type"] == "SaveImage"
    # Each sampler step once, though ComfyUI reports it twice (progress and progress_state).
    steps = [(p["value"], p["max"]) for p in progress if p["node_type"] == "KSampler"]
    assert steps == [(0, 1), (1, 2), (2, 2)]
    (executed,) = [d for k, d in events if k == "executed"]
    assert executed["node"] == "9" and executed["output"]["images"]


@pytest.mark.parametrize("version", VERSIONS)
def test_cached_nodes_are_left_out_of_the_count(version: str) -> None:
    prompts = _prompts(load(version, "ws_02_cached_resubmit"))
    assert len(prompts) >= 2
    graph, frames = prompts[1]  # everything cached: only the output replays
    events = _events(graph, frames)
    assert [k for k, _ in events] == ["started", "executed"]
    partly = 0
    for graph, frames in prompts:
        cached = next((d["nodes"] for k, d in frames if k == "execution_cached"), [])
        if 0 < len(cached) < len(graph):
            partly += 1
            progress = [d for k, d in _events(graph, frames) if k == "progress"]
            assert {p["nodes_total"] for p in progress} == {len(graph) - len(cached)}
            assert progress[-1]["nodes_done"] == len(graph) - len(cached) - 1
    assert partly


def test_older_frames_without_progress_state_still_make_progress() -> None:
    graph = {
        "1": {"class_type": "EmptyImage"},
        "2": {"class_type": "KSampler"},
        "3": {"class_type": "SaveImage"},
    }
    frames = [
        ("execution_start", {"timestamp": 5}),
        ("execution_cached", {"nodes": []}),
        ("executing", {"node": "1"}),
        ("executing", {"node": "2"}),
        ("progress", {"node": "2", "value": 1, "max": 2}),
        ("progress", {"node": "2", "value": 2, "max": 2}),
        ("executing", {"node": "3"}),
        ("executing", {"node": None}),
    ]
    events = _events(graph, frames)
    assert events[0] == ("started", {"prompt_id": None, "at": 5})
    assert [(d["node"], d["value"], d["nodes_done"]) for _, d in events[1:]] == [
        ("1", 0, 0),
        ("2", 0, 1),
        ("2", 1, 1),
        ("2", 2, 1),
        ("3", 0, 2),
    ]


def test_progress_body_speaks_of_steps_only_when_there_are_some() -> None:
    sampling = {"node": "3", "node_type": "KSampler", "value": 12, "max": 20}
    assert progress_body(sampling | {"nodes_done": 4, "nodes_total": 7}) == {
        "current": 4,
        "total": 7,
        "message": "KSampler 12/20",
    }
    saving = {"node": "9", "node_type": None, "value": 0, "max": 1, "nodes_done": 6}
    assert progress_body(saving | {"nodes_total": 7})["message"] == "node 9"
