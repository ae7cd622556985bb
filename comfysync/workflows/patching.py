"""Changes a request makes to a graph before it goes to ComfyUI.

Order: the graph, then raw `patches`, then the `prompt` text (then typed
inputs, see `comfysync.params`), then the gateway's own changes (seeds,
unique output prefixes).
"""

from __future__ import annotations

import random
import time
from collections import deque
from typing import Any

from ..comfy.protocol import node_sort_key
from ..errors import BadRequest
from .titles import resolve_node

Graph = dict[str, dict[str, Any]]

TEXT_CLASSES = {"CLIPTextEncode", "Text Multiline"}
SDXL_TEXT_CLASSES = {"CLIPTextEncodeSDXL", "CLIPTextEncodeSDXLRefiner"}
# Inputs that carry a node's text, most specific first.
TEXT_INPUTS = ("text", "prompt", "string", "value")
SEED_INPUTS = ("seed", "noise_seed")
MAX_SEED = 2**53 - 1  # stays exact in JavaScript clients too
OUTPUT_ROOT = "comfysync"
OUTPUT_WINDOW_SECONDS = 600


def check_graph(graph: Any, field: str = "workflow_data") -> Graph:
    """Make sure `graph` is an API-format graph: `{id: {"class_type", "inputs"}}`.

    :raises BadRequest: naming what is wrong, including a UI-format export.
    """
    if not isinstance(graph, dict) or not graph:
        raise BadRequest(f"'{field}' must be a non-empty object of nodes (ComfyUI API format)")
    if "nodes" in graph and "links" in graph:
        raise BadRequest(
            f"'{field}' is in ComfyUI's UI format; export it with 'Export (API)' instead"
        )
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("inputs", {}), dict):
            raise BadRequest(f"Node {node_id} of '{field}' must be an object with 'inputs'")
        if not isinstance(node.get("class_type"), str):
            raise BadRequest(f"Node {node_id} of '{field}' has no 'class_type'")
        node.setdefault("inputs", {})
    return graph


def apply_patches(graph: Graph, patches: Any) -> None:
    """Merge `{"<node_id or title>": {"inputs": {...}}}` into the graph's nodes.

    :raises BadRequest: for an unknown or ambiguous node, or a malformed patch.
    """
    if patches is None:
        return
    if not isinstance(patches, dict):
        raise BadRequest('\'patches\' must be an object: {"<node_id>": {"inputs": {...}}}')
    for key, patch in patches.items():
        unknown = f"Patch for node {key}, which is not in the workflow"
        node_id = resolve_node(graph, key, field="patches", unknown=unknown)
        if not isinstance(patch, dict) or not isinstance(patch.get("inputs"), dict):
            raise BadRequest(f'Patch for node {node_id} must look like {{"inputs": {{...}}}}')
        graph[node_id]["inputs"].update(patch["inputs"])


def is_text_node(node: dict[str, Any]) -> bool:
    """A node whose prompt text we can set: a known text encoder, or a plain string widget."""
    if node.get("class_type") in TEXT_CLASSES | SDXL_TEXT_CLASSES:
        return True
    return _text_input(node) is not None


def _text_input(node: dict[str, Any]) -> str | None:
    inputs = node.get("inputs", {})
    for name in TEXT_INPUTS:
        if isinstance(inputs.get(name), str):
            return name
    return None


def find_text_node(graph: Graph, target_node: Any = None) -> str:
    """The node that receives the prompt text.

    `target_node` is a node id or title. Without it: the text node feeding a
    sampler's `positive` input, else the first text node by id.

    :raises BadRequest: with the exact messages existing clients match on.
    """
    if target_node is not None and str(target_node) != "":
        not_text = f"Target node {target_node} is not a text input node"
        node_id = resolve_node(graph, target_node, field="target_node", unknown=not_text)
        if not is_text_node(graph[node_id]):
            raise BadRequest(not_text, field="target_node")
        return node_id
    for sampler_id in sorted(graph, key=node_sort_key):
        positive = graph[sampler_id].get("inputs", {}).get("positive")
        found = _upstream_text_node(graph, positive)
        if found is not None:
            return found
    for node_id in sorted(graph, key=node_sort_key):
        if is_text_node(graph[node_id]):
            return node_id
    raise BadRequest("No suitable text input node found in workflow")


def _upstream_text_node(graph: Graph, link: Any, max_hops: int = 8) -> str | None:
    """Follow links upstream (through conditioning nodes) to the first text node."""
    queue: deque[tuple[Any, int]] = deque([(link, 0)])
    while queue:
        current, hops = queue.popleft()
        if not _is_link(current) or hops > max_hops:
            continue
        node_id = str(current[0])
        node = graph.get(node_id)
        if node is None:
            continue
        if is_text_node(node):
            return node_id
        for value in node.get("inputs", {}).values():
            queue.append((value, hops + 1))
    return None


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def apply_prompt(graph: Graph, text: Any, target_node: Any = None) -> str | None:
    """Set the prompt text; returns the node id it went to (None without a prompt).

    :raises BadRequest: when no node can take it.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise BadRequest("'prompt' must be a string")
    node_id = find_text_node(graph, target_node)
    inputs = graph[node_id]["inputs"]
    if graph[node_id].get("class_type") in SDXL_TEXT_CLASSES:
        for name in ("text_g", "text_l", "text"):
            if name in inputs:
                inputs[name] = text
    else:
        inputs[_text_input(graph[node_id]) or "text"] = text
    return node_id


def randomize_seeds(graph: Graph, rng: random.Random | None = None) -> None:
    """Give every literal seed input a fresh random value."""
    rng = rng or random.SystemRandom()
    for node in graph.values():
        inputs = node["inputs"]
        for name in SEED_INPUTS:
            if isinstance(inputs.get(name), int) and not isinstance(inputs[name], bool):
                inputs[name] = rng.randint(0, MAX_SEED)


def output_prefix(prompt_id: str, node_id: str, now: float | None = None) -> str:
    """A `filename_prefix` unique to this prompt and node.

    Files land in rotating subfolders (a ten-minute window, then one of 256
    buckets), because ComfyUI lists the target folder on every save and slows
    down as it fills. The name ends in letters: ComfyUI reads digits after
    `<prefix>_` as its own counter.
    """
    window = int((now if now is not None else time.time()) // OUTPUT_WINDOW_SECONDS)
    token = prompt_id.replace("-", "")
    safe_node = "".join(ch if ch.isalnum() else "_" for ch in node_id)
    return f"{OUTPUT_ROOT}/{window:x}/{token[:2]}/{token}_{safe_node}_out"


def prefix_outputs(graph: Graph, prompt_id: str) -> list[str]:
    """Point every save node at a fresh prefix; returns the ids of those nodes.

    A prefix linked from another node is replaced too: its text is known only
    when ComfyUI runs, and it names the files clients download.
    """
    now = time.time()
    changed = []
    for node_id, node in graph.items():
        if "filename_prefix" in node["inputs"]:
            node["inputs"]["filename_prefix"] = output_prefix(prompt_id, node_id, now)
            changed.append(node_id)
    return changed


def check_output_node(graph: Graph, output_node_id: Any) -> str | None:
    """The id of the node `output_node_id` names (an id or a title), if it names one.

    :raises BadRequest: when no node, or more than one, answers to it.
    """
    if output_node_id is None or output_node_id == "":
        return None
    unknown = f"output_node_id {output_node_id} is not a node of the workflow"
    return resolve_node(graph, output_node_id, field="output_node_id", unknown=unknown)
