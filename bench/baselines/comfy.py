"""What every direct ComfyUI client needs: a graph to submit, `/prompt` and `/view`."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import aiohttp

from ..processes import BENCH_WORKFLOWS

CHUNK = 64 * 1024


class UpstreamError(Exception):
    """ComfyUI answered with an error, or the prompt failed."""


def load_workflow(name: str) -> dict[str, Any]:
    """A graph from bench/workflows, the same file the gateway loads by name."""
    with open(os.path.join(BENCH_WORKFLOWS, f"{name}.json"), encoding="utf-8") as handle:
        return json.load(handle)


def fresh_graph(graph: dict[str, Any], tag: str) -> tuple[str, dict[str, Any]]:
    """A new prompt id and a copy of `graph` whose save nodes write under their own prefix.

    The gateway gives every request its own `filename_prefix` too (in spread-out
    subfolders); without one, ComfyUI's cache would skip the save node entirely.
    """
    prompt_id = str(uuid.uuid4())
    token = prompt_id.replace("-", "")
    copy = {node_id: {**node, "inputs": dict(node["inputs"])} for node_id, node in graph.items()}
    for node in copy.values():
        if isinstance(node["inputs"].get("filename_prefix"), str):
            node["inputs"]["filename_prefix"] = f"bench_{tag}/{token[:2]}/{token}"
    return prompt_id, copy


async def submit(
    session: aiohttp.ClientSession,
    comfy_url: str,
    graph: dict[str, Any],
    prompt_id: str,
    client_id: str | None,
) -> None:
    """`POST /prompt` with our own prompt id.

    :raises UpstreamError: when ComfyUI refuses it.
    """
    body: dict[str, Any] = {"prompt": graph, "prompt_id": prompt_id}
    if client_id is not None:
        body["client_id"] = client_id
    async with session.post(f"{comfy_url}/prompt", json=body) as response:
        await response.read()
        if response.status != 200:
            raise UpstreamError(f"POST /prompt answered {response.status}")


def _node_order(node_id: str) -> tuple[bool, int, str]:
    return (not node_id.isdigit(), int(node_id) if node_id.isdigit() else 0, node_id)


def first_image(outputs: dict[str, Any]) -> dict[str, Any]:
    """The first saved image, by output node id as the gateway orders them.

    :raises UpstreamError: when the prompt produced none.
    """
    for node_id in sorted(outputs, key=_node_order):
        for image in outputs[node_id].get("images") or []:
            return image
    raise UpstreamError("the prompt produced no image")


async def fetch_view(session: aiohttp.ClientSession, comfy_url: str, image: dict[str, Any]) -> int:
    """`GET /view` of one output, read to the end in chunks; returns its size."""
    params = {
        "filename": image["filename"],
        "subfolder": image.get("subfolder", ""),
        "type": image.get("type", "output"),
    }
    size = 0
    async with session.get(f"{comfy_url}/view", params=params) as response:
        if response.status != 200:
            raise UpstreamError(f"GET /view answered {response.status}")
        async for chunk in response.content.iter_chunked(CHUNK):
            size += len(chunk)
    return size


def ws_url(comfy_url: str, client_id: str) -> str:
    """ComfyUI's WebSocket address for one client id."""
    return f"{comfy_url.replace('http://', 'ws://', 1)}/ws?clientId={client_id}"
