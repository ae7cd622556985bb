"""Apply a request's `inputs` to a graph: convert, validate, lower, and write them."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from comfysync.errors import BadRequest
from comfysync.inputs.decode import SourceKind, classify
from comfysync.inputs.errors import FieldError, InvalidInputs, describe
from comfysync.inputs.prepare import ImageJob
from comfysync.params import deploy
from comfysync.params.declarations import Declaration
from comfysync.params.types import Invalid, Param, convert, expected

Graph = dict[str, Any]


def parameters(graph: Mapping[str, Any], declaration: Declaration | None) -> list[Param]:
    """Every parameter of a graph: its ComfyUI Deploy inputs, then its declared ones.

    :raises BadRequest: when a name is used twice or a ComfyUI Deploy node is unusable.
    """
    params = deploy.discover(graph) + list(declaration.params if declaration else ())
    seen: set[str] = set()
    for param in params:
        if param.name in seen:
            raise BadRequest(f"parameter {param.name!r} is declared twice")
        seen.add(param.name)
    return params


def resolve_inputs(
    graph: Mapping[str, Any],
    declaration: Declaration | None,
    inputs: Mapping[str, Any] | None,
    files: Mapping[str, bytes] | None = None,
) -> tuple[Graph, list[ImageJob]]:
    """Validate `inputs` (and multipart `files`) and apply them to a copy of `graph`.

    Call it last, after the graph's patches and prompt. ComfyUI Deploy nodes are lowered
    to plain nodes. Image values that are file names are written directly; every other
    image (URL, base64, uploaded bytes) is returned as an `ImageJob` for
    `comfysync.inputs.prepare_images`, which fills in the uploaded name.

    :raises InvalidInputs: listing every unknown, missing or invalid field at once.
    :raises BadRequest: when `inputs` is not an object or the graph's parameters clash.
    """
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, Mapping):
        raise BadRequest("'inputs' must be an object of parameter name -> value")
    params = parameters(graph, declaration)
    by_name = {param.name: param for param in params}
    errors: list[FieldError] = []

    supplied: dict[str, Any] = dict(inputs)
    for name, data in (files or {}).items():
        if name in supplied:
            errors.append(FieldError(name, "one value", "a field and a file", "given twice"))
        supplied[name] = data
    for name, value in supplied.items():
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            errors.append(
                FieldError(
                    name, f"a declared parameter ({known})", describe(value), "unknown parameter"
                )
            )

    values: dict[str, Any] = {}
    for param in params:
        try:
            if param.name in supplied:
                values[param.name] = convert(param, supplied[param.name])
            elif param.has_default:
                values[param.name] = _convert_default(param)
            elif param.required or (param.source == "comfyui_deploy" and not param.default_link):
                # A Deploy node must be replaced by something: without a value there is none.
                raise Invalid("required")
            if param.name in values and param.source == "declaration":
                _check_targets_exist(graph, param)
        except Invalid as err:
            got = describe(supplied[param.name]) if param.name in supplied else "nothing"
            errors.append(FieldError(param.name, expected(param), got, str(err)))
    if errors:
        raise InvalidInputs(errors)

    out: Graph = copy.deepcopy(dict(graph))
    jobs: list[ImageJob] = []
    for param in params:
        if param.source == "comfyui_deploy":
            jobs += _lower(out, param, values.get(param.name))
        elif param.name in values:
            jobs += _apply(out, param, values[param.name])
    return out, jobs


def _convert_default(param: Param) -> Any:
    try:
        return convert(param, param.default)
    except Invalid as err:
        raise Invalid(f"required (the workflow's default is unusable: {err})") from None


def _check_targets_exist(graph: Mapping[str, Any], param: Param) -> None:
    for target in param.targets:
        if not isinstance(graph.get(target.node), dict):
            raise Invalid(f"the workflow has no node {target.node} to set ({target})")


def _apply(graph: Graph, param: Param, value: Any) -> list[ImageJob]:
    targets = tuple((t.node, t.input) for t in param.targets)
    if param.type == "image" and _needs_upload(value):
        return [ImageJob(param.name, value, targets, alpha=param.alpha)]
    for node, input_name in targets:
        graph[node].setdefault("inputs", {})[input_name] = value
    return []


def _lower(graph: Graph, param: Param, value: Any) -> list[ImageJob]:
    jobs = []
    for node_id in deploy.deploy_nodes(graph, param.name):
        if param.type != "image":
            link = list(param.default_link) if param.default_link else None
            deploy.lower_scalar(graph, node_id, value if value is not None else link)
        elif value is None:  # no image given: use the image wired into default_value
            deploy.lower_scalar(graph, node_id, list(param.default_link or ()))
        else:
            target = deploy.lower_image(graph, node_id, param.alpha)
            if _needs_upload(value):
                jobs.append(ImageJob(param.name, value, (target,), alpha=param.alpha))
            else:
                graph[target[0]]["inputs"][target[1]] = value
    return jobs


def _needs_upload(value: Any) -> bool:
    return isinstance(value, bytes) or classify(str(value)) is not SourceKind.NAME
