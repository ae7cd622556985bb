"""The JSON description of a workflow's parameters, for `GET /api/workflows/<name>`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from comfysync.params.declarations import Declaration
from comfysync.params.deploy import is_link
from comfysync.params.resolve import parameters
from comfysync.params.types import Param


def schema_json(graph: Mapping[str, Any], declaration: Declaration | None) -> dict[str, Any]:
    """Describe every parameter: name, type, default, bounds, choices and targets.

    Parameters are a list, in declaration order (JSON objects lose order once sorted).

    :raises BadRequest: when the graph's parameters clash (see `parameters`).
    """
    body: dict[str, Any] = {
        "parameters": [param_json(graph, param) for param in parameters(graph, declaration)]
    }
    if declaration and declaration.description:
        body["description"] = declaration.description
    return body


def param_json(graph: Mapping[str, Any], param: Param) -> dict[str, Any]:
    """The JSON form of one parameter."""
    default = param.default if param.has_default else _graph_value(graph, param)
    required = param.required or (
        param.source == "comfyui_deploy" and not param.has_default and not param.default_link
    )
    item: dict[str, Any] = {
        "name": param.name,
        "type": param.type,
        "default": None if required or isinstance(default, bytes) else default,
        "required": required,
        "description": param.description,
        "display_name": param.display_name or param.name,
        "min": param.minimum,
        "max": param.maximum,
        "choices": list(param.choices) if param.type == "enum" else None,
        "targets": [{"node": t.node, "input": t.input} for t in param.targets],
        "source": param.source,
    }
    if param.type == "image":
        item["alpha"] = param.alpha
    if param.node_class:
        item["node_class"] = param.node_class
    return item


def _graph_value(graph: Mapping[str, Any], param: Param) -> Any:
    """Without a declared default, the graph's own value at the first target is it."""
    if param.source != "declaration" or not param.targets:
        return None
    first = param.targets[0]
    node = graph.get(first.node)
    value = (node.get("inputs") or {}).get(first.input) if isinstance(node, dict) else None
    return None if is_link(value) else value


# Parameter types -> JSON Schema.
_TYPES = {"string": "string", "int": "integer", "float": "number", "bool": "boolean"}
_IMAGE = "An image: http(s) URL, data:image/...;base64, URL, or plain base64"


def inputs_schema(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON Schema of a workflow's inputs, from its parameter list (`param_json`).

    A workflow without parameters takes a `prompt`. Used by the API description
    and the agent tool alike.
    """
    if not parameters:
        return {
            "type": "object",
            "properties": {"prompt": {"type": "string", "description": "What to make"}},
        }
    properties: dict[str, Any] = {}
    required = []
    for param in parameters:
        prop: dict[str, Any] = {}
        if param["type"] == "enum":
            prop["enum"] = param["choices"]
        elif param["type"] == "image":
            prop = {"type": "string", "description": _IMAGE}
        else:
            prop["type"] = _TYPES.get(param["type"], "string")
        if param.get("min") is not None:
            prop["minimum"] = param["min"]
        if param.get("max") is not None:
            prop["maximum"] = param["max"]
        if param.get("description"):
            prop["description"] = param["description"]
        if param.get("default") is not None:
            prop["default"] = param["default"]
        properties[param["name"]] = prop
        if param.get("required"):
            required.append(param["name"])
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema
