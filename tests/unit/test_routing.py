"""Which server the router picks: least expected time to finish, then warm models."""

from __future__ import annotations

import json

from comfysync.comfy.backend import ComfyBackend
from comfysync.comfy.client import ComfyClient
from comfysync.comfy.watcher import ComfyWatcher
from comfysync.routing import models_of, ranked


def server(name: str, *, limit: int = 1, tags: frozenset[str] = frozenset()) -> ComfyBackend:
    client = ComfyClient(f"http://127.0.0.1:9/{name}")  # never contacted here
    watcher = ComfyWatcher(client)
    return ComfyBackend(client, watcher, None, name=name, limit=limit, tags=tags)  # type: ignore[arg-type]


def names(backends: list[ComfyBackend]) -> list[str]:
    return [b.name for b in backends]


def status_frame(backend: ComfyBackend, remaining: int) -> None:
    frame = {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}}}}
    backend.watcher._dispatch(json.dumps(frame).encode())


def test_idle_servers_fastest_first_and_untried_ones_get_the_fleet_mean() -> None:
    fast, slow, new = server("fast"), server("slow"), server("new")
    for _ in range(3):
        fast.job_done(0.1, "w", frozenset())
        slow.job_done(0.4, "w", frozenset())
    assert names(ranked([slow, new, fast], workflow="w")) == ["fast", "new", "slow"]


def test_load_counts_our_prompts_and_what_the_server_reports() -> None:
    a, b, c = server("a", limit=0), server("b", limit=0), server("c", limit=0)
    a.claimed = 2
    status_frame(b, 1)
    assert names(ranked([a, b, c])) == ["c", "b", "a"]
    status_frame(b, 5)  # other clients' prompts count too
    assert names(ranked([a, b, c])) == ["c", "a", "b"]


def test_full_servers_are_left_out() -> None:
    a, b = server("a", limit=1), server("b", limit=2)
    a.claimed = 1
    b.claimed = 1
    assert names(ranked([a, b])) == ["b"]
    b.claimed = 2
    assert ranked([a, b]) == []


def test_down_servers_get_nothing_unless_every_server_is_down() -> None:
    a, b = server("a"), server("b")
    a.health.up = False
    assert names(ranked([a, b])) == ["b"]
    assert ranked([a, b], {"server": "a"}) == []  # pinned: it waits for a
    b.health.up = False
    assert names(ranked([a, b])) == ["a", "b"]  # fail fast, as with one server


def test_equal_servers_prefer_the_one_with_the_models_loaded() -> None:
    a, b = server("a"), server("b")
    a.job_done(1.0, None, frozenset({"sd15.safetensors"}))
    b.job_done(1.0, None, frozenset({"sdxl.safetensors"}))
    graph = {"4": {"inputs": {"ckpt_name": "sdxl.safetensors"}}}
    assert names(ranked([a, b], models=models_of(graph))) == ["b", "a"]
    # ...but a server that would finish sooner still wins.
    b.claimed = 1
    b.limit = 2
    assert names(ranked([a, b], models=models_of(graph))) == ["a", "b"]


def test_routes_pin_a_server_or_need_tags() -> None:
    a, b = server("a", tags=frozenset({"sdxl"})), server("b", tags=frozenset({"sdxl", "big"}))
    assert names(ranked([a, b], {"server": "b"})) == ["b"]
    assert names(ranked([a, b], {"tags": ["big"]})) == ["b"]
    assert names(ranked([a, b], {"tags": ["sdxl"]})) == ["a", "b"]
    assert ranked([a, b], {"tags": ["flux"]}) == []


def test_models_of_finds_model_files_only() -> None:
    graph = {
        "1": {"inputs": {"ckpt_name": "base.safetensors", "lora_name": "style.pt"}},
        "2": {"inputs": {"sampler_name": "euler", "image": "in.png", "text": "a.ckpt"}},
        "3": "not a node",
    }
    assert models_of(graph) == {"base.safetensors", "style.pt"}
    assert models_of(None) == frozenset()
