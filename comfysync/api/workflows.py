"""Stored workflows: list them and queue one without waiting."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, current_app, jsonify

from ..auth import check_may_run
from ..errors import BadRequest, GatewayError
from ..generation import GenerationSpec, build_graph, run_route, submit_only
from ..params import schema_json
from .body import read_body

bp = Blueprint("workflows", __name__)

_SIMPLE_KEYS = {"prompt", "target_node", "patches", "randomize_seed", "inputs"}


@bp.get("/workflows")
def list_workflows():
    """Names of the stored workflows, and the versions and aliases of versioned ones.

    Without versioned workflows the answer is exactly what it always was.
    """
    store = current_app.extensions["comfysync"].workflows
    deployments = store.deployments()
    return {"workflows": store.names()} | ({"deployments": deployments} if deployments else {})


@bp.get("/workflows/<name>")
def workflow_schema(name: str):
    """A workflow's typed parameters: name, type, default, bounds, and the node each sets.

    `name` may pick a version or alias (`sd_txt2img@staging`); `version` says which it got.
    """
    store = current_app.extensions["comfysync"].workflows
    version = store.resolve(name).version
    graph = store.load(name)
    head: dict[str, Any] = {"name": name} | ({"version": version} if version else {})
    return head | schema_json(graph, store.declaration(name, graph))


def _spec_for(name: str, body: Any, files: dict[str, bytes]) -> GenerationSpec:
    """Read the simple body (`prompt`, `target_node`) or the advanced one (`{id: {inputs}}`)."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    if body.keys() - _SIMPLE_KEYS:
        body = {"patches": body}
    return GenerationSpec.from_body({**body, "workflow": name}, files)


@bp.post("/workflow/<name>")
def queue_workflow(name: str):
    """Submit a stored workflow without waiting; poll `/api/task_status/<prompt_id>`."""
    gateway = current_app.extensions["comfysync"]
    prompt_id = str(uuid.uuid4())
    try:
        spec = _spec_for(name, *read_body())
        check_may_run(spec)
        backend = gateway.home(run_route(gateway, spec))
        graph = build_graph(gateway, spec, prompt_id, backend)
        reply = submit_only(backend, graph, prompt_id)
    except GatewayError as err:
        body = {"prompt_id": None, "node_errors": {}, "client_id": None} | err.to_dict()
        return jsonify(body), err.code
    return {
        "status": "success",
        "prompt_id": reply.get("prompt_id", prompt_id),
        "number": reply.get("number"),
        "node_errors": reply.get("node_errors", {}),
        "error": None,
        "client_id": backend.client_id,
    }
