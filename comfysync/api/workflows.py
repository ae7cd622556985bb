"""Stored workflows: list them and queue one without waiting."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, current_app, jsonify

from ..auth import check_may_run
from ..errors import BadRequest, GatewayError
from ..generation import GenerationSpec, build_graph, run_route, submit_only
from ..models.requests import WorkflowInputs, WorkflowPatch
from ..models.responses import (
    GenerateResponse,
    QueuedPrompt,
    RunCreated,
    WorkflowList,
    WorkflowSchema,
)
from ..openapi.operations import operation
from ..params import schema_json
from ..params.resolve import parameters
from .body import read_body
from .generate import answer_url
from .runs import accept

bp = Blueprint("workflows", __name__)

_SIMPLE_KEYS = {"prompt", "target_node", "patches", "randomize_seed", "inputs"}


@bp.get("/workflows")
@operation(answers={200: WorkflowList}, tag="workflows")
def list_workflows():
    """Names of the stored workflows, and the versions and aliases of versioned ones.

    Without versioned workflows the answer is exactly what it always was.
    """
    store = current_app.extensions["comfysync"].workflows
    deployments = store.deployments()
    return {"workflows": store.names()} | ({"deployments": deployments} if deployments else {})


@bp.get("/workflows/<name>")
@operation(answers={200: WorkflowSchema}, tag="workflows")
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
@operation(
    body=WorkflowPatch,
    multipart=True,
    answers={200: QueuedPrompt},
    tag="workflows",
    body_required=False,
)
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


def _typed_body(name: str, body: Any) -> dict[str, Any]:
    """A workflow's typed parameters as a `/api/generate` body.

    A workflow without parameters takes only `prompt`, for its prompt node.
    """
    store = current_app.extensions["comfysync"].workflows
    graph = store.load(name)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object of the workflow's parameters")
    if parameters(graph, store.declaration(name, graph)):
        return {"workflow": name, "inputs": body}
    unknown = sorted(body.keys() - {"prompt"})
    if unknown:
        raise BadRequest(
            f"Workflow {name} has no parameters, only 'prompt'; unknown: {', '.join(unknown)}",
            field=unknown[0],
        )
    return {"workflow": name} | ({"prompt": body["prompt"]} if "prompt" in body else {})


@bp.post("/workflows/<name>/generate")
@operation(
    body=WorkflowInputs,
    multipart=True,
    answers={200: GenerateResponse},
    tag="workflows",
    body_required=False,
)
def generate_workflow(name: str):
    """Run a stored workflow with its typed parameters; answers as /api/generate.

    Each workflow has its own typed operation in this document.
    """
    body, files = read_body()
    return answer_url(_typed_body(name, body), files)


@bp.post("/workflows/<name>/run")
@operation(
    body=WorkflowInputs,
    multipart=True,
    answers={201: RunCreated},
    tag="workflows",
    body_required=False,
)
def run_workflow(name: str):
    """Queue a stored workflow with its typed parameters; answers as /api/run."""
    body, files = read_body()
    run_id, code, headers = accept(_typed_body(name, body), files)
    return {"run_id": run_id}, code, headers
