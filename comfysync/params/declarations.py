"""`workflows/<name>.params.json`: named, typed parameters for a plain ComfyUI graph.

The file sits beside `workflows/<name>.json` and never reaches ComfyUI. Format::

    {
      "description": "optional text about the workflow",
      "tags": ["sdxl"],
      "parameters": {
        "prompt": {"type": "string", "target": "6.text", "description": "What to draw"},
        "seed":   {"type": "int", "targets": ["3.seed", "12.noise_seed"],
                   "min": 0, "max": 18446744073709551615},
        "sampler": {"type": "enum", "target": "3.sampler_name",
                    "choices": ["euler", "euler_ancestral", "dpmpp_2m"]},
        "image":  {"type": "image", "target": "10.image", "required": true}
      }
    }

Each parameter takes:

- `type` (required): string, int, float, bool, enum or image.
- `target` ("node_id.input_name") or `targets` (a list of them; required).
- `default`: written to the targets when the request does not set the parameter.
  Without it, the graph's own value stays (so raw patches to that input still count)
  and is what the schema reports as the default.
- `description`, `display_name`: text for clients.
- `min`, `max` (int and float), `choices` (enum, required there): checked on input.
- `required` (bool): the request must set it.
- `alpha` (image only): upload as an RGBA PNG so LoadImage's MASK output carries it.

`tags` (optional, at the top) are server tags every run of the workflow needs: in a
fleet it runs only on servers that have them all (COMFYUI_URLS `;tags=`).

A `$comment` key (at the top or in a parameter) is ignored; any other unknown key is an
error, so a typo surfaces when the file is loaded instead of being silently ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from comfysync.params.types import TYPES, Invalid, Param, Target, convert

SUFFIX = ".params.json"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_PARAM_KEYS = {
    "type",
    "target",
    "targets",
    "default",
    "description",
    "display_name",
    "min",
    "max",
    "choices",
    "required",
    "alpha",
    "$comment",
}


class DeclarationError(ValueError):
    """A `.params.json` file is malformed or does not fit its graph (a deployment error)."""


@dataclass(frozen=True)
class Declaration:
    """The parsed parameters of one workflow, in file order."""

    params: tuple[Param, ...]
    description: str = ""
    source: str = "<inline>"
    tags: tuple[str, ...] = ()  # server tags its runs need


def declaration_path(workflow_path: str | Path) -> Path:
    """Where the declaration of `workflows/<name>.json` lives: `workflows/<name>.params.json`."""
    path = Path(workflow_path)
    return path.with_name(path.name.removesuffix(".json") + SUFFIX)


def is_declaration_file(path: str | Path) -> bool:
    """True for `*.params.json` files, which the workflow store must not list."""
    return Path(path).name.endswith(SUFFIX)


def load_declaration(
    workflow_path: str | Path, graph: Mapping[str, Any] | None = None
) -> Declaration | None:
    """Load the declaration beside a workflow file, or None if it has none.

    With `graph`, also check that every target names an existing node input.

    :raises DeclarationError: naming the file, when it is unreadable or invalid.
    """
    path = declaration_path(workflow_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise DeclarationError(f"{path.name}: cannot read ({err})") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DeclarationError(f"{path.name}: not valid JSON ({err})") from err
    return parse_declaration(data, graph, source=path.name)


def parse_declaration(
    data: Any, graph: Mapping[str, Any] | None = None, *, source: str = "<inline>"
) -> Declaration:
    """Build a `Declaration` from its JSON form (see the module docstring).

    :raises DeclarationError: naming `source` and the offending parameter.
    """
    if not isinstance(data, dict):
        raise DeclarationError(f"{source}: expected a JSON object")
    unknown = set(data) - {"parameters", "description", "tags", "$comment"}
    if unknown:
        raise DeclarationError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
    specs = data.get("parameters")
    if not isinstance(specs, dict):
        raise DeclarationError(f"{source}: 'parameters' must be an object of name -> spec")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise DeclarationError(f"{source}: 'description' must be a string")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise DeclarationError(f"{source}: 'tags' must be a list of server tags")
    params = []
    for name, spec in specs.items():
        try:
            params.append(_parse_param(name, spec))
        except DeclarationError as err:
            raise DeclarationError(f"{source}: parameter {name!r}: {err}") from None
    declaration = Declaration(tuple(params), description, source, tuple(sorted(set(tags))))
    if graph is not None:
        check_targets(graph, declaration)
    return declaration


def check_targets(graph: Mapping[str, Any], declaration: Declaration) -> None:
    """Check every target is an input the graph's node really has.

    :raises DeclarationError: naming the first parameter whose target is missing.
    """
    for param in declaration.params:
        for target in param.targets:
            node = graph.get(target.node)
            if not isinstance(node, dict):
                raise DeclarationError(
                    f"{declaration.source}: parameter {param.name!r} targets node "
                    f"{target.node!r}, which is not in the workflow"
                )
            if target.input not in (node.get("inputs") or {}):
                raise DeclarationError(
                    f"{declaration.source}: parameter {param.name!r} targets {target}, but "
                    f"node {target.node} ({node.get('class_type')}) has no input "
                    f"{target.input!r}"
                )


def _parse_param(name: Any, spec: Any) -> Param:
    if not isinstance(name, str) or not _NAME.match(name):
        raise DeclarationError("a name must be letters, digits, '_' or '-'")
    if not isinstance(spec, dict):
        raise DeclarationError("expected an object")
    unknown = set(spec) - _PARAM_KEYS
    if unknown:
        raise DeclarationError(f"unknown key(s) {', '.join(sorted(unknown))}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise DeclarationError(f"'type' must be one of {', '.join(TYPES)}")
    targets = _parse_targets(spec)
    minimum, maximum = _bound(spec, "min", kind), _bound(spec, "max", kind)
    if minimum is not None and maximum is not None and minimum > maximum:
        raise DeclarationError("'min' is above 'max'")
    choices = spec.get("choices")
    if kind == "enum":
        if not isinstance(choices, list) or not choices:
            raise DeclarationError("an enum needs a non-empty 'choices' list")
        if not all(isinstance(c, str | int | float) and not isinstance(c, bool) for c in choices):
            raise DeclarationError("'choices' must be strings or numbers")
    elif choices is not None:
        raise DeclarationError("'choices' only applies to enum parameters")
    alpha = spec.get("alpha", False)
    if not isinstance(alpha, bool) or (alpha and kind != "image"):
        raise DeclarationError("'alpha' is a boolean for image parameters only")
    required = spec.get("required", False)
    if not isinstance(required, bool):
        raise DeclarationError("'required' must be true or false")
    texts = {key: spec.get(key, "") for key in ("description", "display_name")}
    if not all(isinstance(text, str) for text in texts.values()):
        raise DeclarationError("'description' and 'display_name' must be strings")
    param = Param(
        name=name,
        type=kind,
        targets=targets,
        description=texts["description"],
        display_name=texts["display_name"],
        minimum=minimum,
        maximum=maximum,
        choices=tuple(choices or ()),
        required=required,
        alpha=alpha,
    )
    if "default" in spec:
        if required:
            raise DeclarationError("a required parameter cannot have a default")
        try:
            default = convert(param, spec["default"])
        except Invalid as err:
            raise DeclarationError(f"invalid default ({err})") from None
        param = replace(param, default=default, has_default=True)
    return param


def _parse_targets(spec: dict[str, Any]) -> tuple[Target, ...]:
    if ("target" in spec) == ("targets" in spec):
        raise DeclarationError("give exactly one of 'target' or 'targets'")
    raw = [spec["target"]] if "target" in spec else spec["targets"]
    if not isinstance(raw, list) or not raw:
        raise DeclarationError("'targets' must be a non-empty list")
    targets = []
    for item in raw:
        # Split at the last dot: input names never hold one, node ids might.
        node, dot, input_name = item.rpartition(".") if isinstance(item, str) else ("", "", "")
        if not (dot and node and input_name):
            raise DeclarationError(f"target {item!r} is not 'node_id.input_name'")
        targets.append(Target(node, input_name))
    return tuple(targets)


def _bound(spec: dict[str, Any], key: str, kind: str) -> int | float | None:
    value = spec.get(key)
    if value is None:
        return None
    if kind not in ("int", "float"):
        raise DeclarationError(f"'{key}' only applies to int and float parameters")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DeclarationError(f"'{key}' must be a number")
    return value
