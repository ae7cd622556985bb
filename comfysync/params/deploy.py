"""ComfyUI Deploy's external input nodes: find them, and lower them to plain ComfyUI.

A graph exported from ComfyUI Deploy declares its inputs as `ComfyUIDeployExternal*`
nodes whose `input_id` names the parameter. Lowering replaces every link from a scalar
node with the literal value, turns an image node into a core `LoadImage` (plus
`JoinImageWithAlpha` for the alpha variant), and removes the external nodes, so the
graph runs on a ComfyUI without ComfyUI Deploy, and images go through our safe fetching.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from comfysync.errors import BadRequest
from comfysync.inputs.decode import SourceKind, classify
from comfysync.numbers import parse_whole
from comfysync.params.types import Param, ParamType, Target

PREFIX = "ComfyUIDeployExternal"


@dataclass(frozen=True)
class _Kind:
    """How one external node class maps to a parameter."""

    type: ParamType
    default_fields: tuple[str, ...]  # the first one holding a value is the default
    fallback: Any = None  # the node's own default when the field was not exported
    bounds: tuple[float, float] | None = None  # min_value/max_value defaults
    alpha: bool = False
    file_name: bool = False


# Field names and defaults as ComfyUI Deploy's node definitions declare them.
KINDS: dict[str, _Kind] = {
    f"{PREFIX}Text": _Kind("string", ("default_value",), ""),
    f"{PREFIX}TextAny": _Kind("string", ("default_value",), ""),
    f"{PREFIX}Number": _Kind("float", ("default_value",), 0.0),
    f"{PREFIX}NumberInt": _Kind("int", ("default_value",), 0),
    f"{PREFIX}NumberSlider": _Kind("float", ("default_value",), 0.5, bounds=(0.0, 1.0)),
    f"{PREFIX}NumberSliderInt": _Kind("int", ("default_value",), 1, bounds=(0, 10)),
    f"{PREFIX}Boolean": _Kind("bool", ("default_value",), False),
    # A `lora_url` that is a file name wins over `default_lora_name`; a URL is skipped.
    f"{PREFIX}Lora": _Kind("string", ("lora_url", "default_lora_name"), file_name=True),
    # Older exports named the field `default_checkpoint_name`.
    f"{PREFIX}Checkpoint": _Kind(
        "string", ("default_value", "default_checkpoint_name"), file_name=True
    ),
    # `default_value` is an IMAGE link: the image wired in when no input is given.
    f"{PREFIX}Image": _Kind("image", ("default_value_url", "default_value")),
    f"{PREFIX}ImageAlpha": _Kind("image", ("default_value",), alpha=True),
}


def is_deploy_node(node: Any) -> bool:
    """True for a ComfyUI Deploy external input node this module can lower."""
    return isinstance(node, dict) and node.get("class_type") in KINDS


def discover(graph: Mapping[str, Any]) -> list[Param]:
    """The parameters that the graph's ComfyUI Deploy nodes declare, in graph order.

    Two nodes with the same `input_id` form one parameter: both get the value.

    :raises BadRequest: when an external node has no usable `input_id`.
    """
    params: dict[str, Param] = {}
    for node_id, node in graph.items():
        if not is_deploy_node(node):
            continue
        param = _param(str(node_id), node, graph)
        known = params.get(param.name)
        if known is None:
            params[param.name] = param
        elif known.type != param.type:
            raise BadRequest(
                f"ComfyUI Deploy input {param.name!r} is declared twice with different types"
            )
    return list(params.values())


def deploy_nodes(graph: Mapping[str, Any], name: str) -> list[str]:
    """Ids of the external nodes whose `input_id` is `name`."""
    return [
        str(node_id)
        for node_id, node in graph.items()
        if is_deploy_node(node) and (node.get("inputs") or {}).get("input_id") == name
    ]


def consumers(graph: Mapping[str, Any], node_id: str) -> list[Target]:
    """Every node input linked to an output of `node_id`."""
    found = []
    for other_id, node in graph.items():
        if not isinstance(node, dict):
            continue
        for input_name, value in (node.get("inputs") or {}).items():
            if is_link(value) and str(value[0]) == node_id:
                found.append(Target(str(other_id), input_name))
    return found


def is_link(value: Any) -> bool:
    """True for an API-format link: `["node_id", output_index]`."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def lower_scalar(graph: dict[str, Any], node_id: str, value: Any) -> None:
    """Replace every link from external node `node_id` by `value`, then drop the node."""
    for target in consumers(graph, node_id):
        graph[target.node]["inputs"][target.input] = value
    graph.pop(node_id, None)


def lower_image(graph: dict[str, Any], node_id: str, alpha: bool) -> tuple[str, str]:
    """Turn external image node `node_id` into core nodes; return the LoadImage target.

    The node keeps its id, so links to it stay valid. The alpha variant becomes a
    LoadImage feeding JoinImageWithAlpha: LoadImage's MASK is 1 - alpha and
    JoinImageWithAlpha inverts it back, so consumers get the RGBA image they had.
    """
    node = graph[node_id]
    title = _text(node, "display_name") or _text(node, "input_id") or "image"
    meta = {"title": title}
    if not alpha:
        graph[node_id] = {"inputs": {"image": ""}, "class_type": "LoadImage", "_meta": meta}
        return node_id, "image"
    load_id = _new_id(graph)
    graph[load_id] = {"inputs": {"image": ""}, "class_type": "LoadImage", "_meta": meta}
    graph[node_id] = {
        "inputs": {"image": [load_id, 0], "alpha": [load_id, 1]},
        "class_type": "JoinImageWithAlpha",
        "_meta": {"title": f"{title} (with alpha)"},
    }
    return load_id, "image"


def _param(node_id: str, node: dict[str, Any], graph: Mapping[str, Any]) -> Param:
    kind = KINDS[node["class_type"]]
    inputs = node.get("inputs") or {}
    name = inputs.get("input_id")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest(f"ComfyUI Deploy node {node_id} has no input_id")
    default, has_default = kind.fallback, kind.fallback is not None
    link: tuple[str, int] | None = None
    for field in kind.default_fields:
        value = inputs.get(field)
        if isinstance(value, list) and is_link(value):
            default, has_default, link = None, False, (str(value[0]), int(value[1]))
            break
        if value is None or value == "":
            continue
        if kind.file_name and isinstance(value, str) and _is_fetched(value):
            continue  # a download URL: we never fetch models, so the next field decides
        default, has_default = value, True
        break
    minimum = maximum = None
    if kind.bounds:
        minimum = _number(inputs.get("min_value"), kind.bounds[0])
        maximum = _number(inputs.get("max_value"), kind.bounds[1])
    if kind.type == "image":
        targets: tuple[Target, ...] = (Target(node_id, "image"),)
    else:
        targets = tuple(consumers(graph, node_id))
    return Param(
        name=name,
        type=kind.type,
        targets=targets,
        default=default,
        has_default=has_default,
        description=_text(node, "description"),
        display_name=_text(node, "display_name"),
        minimum=minimum,
        maximum=maximum,
        alpha=kind.alpha,
        file_name=kind.file_name,
        source="comfyui_deploy",
        node_class=node["class_type"],
        default_link=link,
    )


def _text(node: dict[str, Any], key: str) -> str:
    value = (node.get("inputs") or {}).get(key)
    return value if isinstance(value, str) else ""


def _number(value: Any, fallback: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return fallback


def _new_id(graph: Mapping[str, Any]) -> str:
    numbers = (parse_whole(str(k)) for k in graph)
    return str(max((n for n in numbers if n is not None), default=0) + 1)


def _is_fetched(value: str) -> bool:
    """A URL or inline data; `alias:name` is an input-image form, a plain name here."""
    return classify(value) not in (SourceKind.NAME, SourceKind.MOUNT)
