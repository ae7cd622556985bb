"""Building `/openapi.json` from the app's routes and what each declares (`operations.py`).

Built once when the app starts: the routes and the stored workflows are read
then, and every request for the document gets the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ..models.responses import ErrorBody, GenerateResponse, RunCreated
from .operations import EVENTS, FILE, TEXT, Answer, Operation, declared

_REF = "#/components/schemas/{model}"
_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_MEDIA = {
    FILE: {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    EVENTS: {"text/event-stream": {"schema": {"type": "string"}}},
    TEXT: {"text/plain": {"schema": {"type": "string"}}},
}
_DESCRIPTIONS = {
    200: "OK",
    201: "Created",
    202: "Accepted: still running (see Location)",
    503: "Not ready",
}


@dataclass(frozen=True)
class WorkflowInputs:
    """A stored workflow's typed parameters, as a JSON Schema."""

    name: str
    schema: dict[str, Any]
    description: str


def build_document(
    app: Flask, workflows: Iterable[WorkflowInputs], version: str = "1"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every declared route, plus a typed operation per workflow."""
    operations = _declared_routes(app)
    models = _models(op for _, _, _, op in operations)
    refs, schemas = _schemas(models)
    paths: dict[str, dict[str, Any]] = {}
    seen_ids: set[str] = set()
    for path, method, view, op in operations:
        item = _operation(path, view, op, refs, seen_ids)
        paths.setdefault(_openapi_path(path), {})[method] = item
    for workflow in workflows:
        _add_workflow(paths, workflow, refs, seen_ids)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "comfysync",
            "version": version,
            "description": "A plain, reliable HTTP generation API over ComfyUI servers.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key"}
            },
        },
        # Keys are optional (API_KEYS): with none configured, no header is needed.
        "security": [{"bearer": []}, {}],
    }


def _declared_routes(app: Flask) -> list[tuple[str, str, Any, Operation]]:
    found = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        op = declared(view)
        if op is None:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.rule, method.lower(), view, op))
    return found


def undeclared_routes(app: Flask) -> list[str]:
    """Routes the document leaves out (a test keeps this to the docs' own pages)."""
    return sorted(
        r.rule for r in app.url_map.iter_rules() if declared(app.view_functions[r.endpoint]) is None
    )


def _models(operations: Iterable[Operation]) -> list[type[BaseModel]]:
    models: dict[str, type[BaseModel]] = {"ErrorBody": ErrorBody}
    for op in operations:
        for model in (op.body, *op.answers.values()):
            if isinstance(model, type):
                models[model.__name__] = model
    # The answers of the typed workflow operations, which no route declares.
    models["GenerateResponse"] = GenerateResponse
    models["RunCreated"] = RunCreated
    return list(models.values())


def _schemas(models: list[type[BaseModel]]) -> tuple[dict[type[BaseModel], Any], dict[str, Any]]:
    refs, top = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    return {model: refs[(model, "validation")] for model in models}, top.get("$defs", {})


def _openapi_path(rule: str) -> str:
    return _ARGUMENT.sub(r"{\1}", rule)


def _doc(view: Any) -> tuple[str, str]:
    lines = (view.__doc__ or "").strip().splitlines()
    summary = lines[0].strip() if lines else view.__name__.replace("_", " ")
    rest = "\n".join(line.strip() for line in lines[1:]).strip()
    return summary, rest


def _unique(name: str, seen: set[str]) -> str:
    candidate, n = name, 2
    while candidate in seen:
        candidate, n = f"{name}_{n}", n + 1
    seen.add(candidate)
    return candidate


def _answer(code: int, answer: Answer, refs: dict[type[BaseModel], Any]) -> dict[str, Any]:
    description = _DESCRIPTIONS.get(code, "OK")
    if isinstance(answer, str):
        return {"description": description, "content": _MEDIA[answer]}
    return {
        "description": description,
        "content": {"application/json": {"schema": refs[answer]}},
    }


def _operation(
    path: str, view: Any, op: Operation, refs: dict[type[BaseModel], Any], seen: set[str]
) -> dict[str, Any]:
    summary, description = _doc(view)
    item: dict[str, Any] = {
        "operationId": _unique(view.__name__, seen),
        "summary": summary,
        "tags": [op.tag],
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _ARGUMENT.findall(path)
        ]
        + [
            {"name": q.name, "in": q.where, "required": False, "schema": q.schema}
            | ({"description": q.description} if q.description else {})
            for q in op.query
        ],
        "responses": {str(code): _answer(code, a, refs) for code, a in op.answers.items()}
        | {"default": _answer(0, ErrorBody, refs) | {"description": "An error"}},
    }
    if description:
        item["description"] = description
    if op.body is not None:
        item["requestBody"] = _request_body(refs[op.body], op.multipart, op.body_required)
    if op.public:
        item["security"] = []
    return item


def _request_body(schema: dict[str, Any], multipart: bool, required: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if multipart:
        content["multipart/form-data"] = {
            "schema": {
                "type": "object",
                "properties": {
                    "payload": {"type": "string", "description": "The JSON body, as text"}
                },
                "additionalProperties": {"type": "string", "format": "binary"},
            },
            "encoding": {"payload": {"contentType": "application/json"}},
        }
    return {"required": required, "content": content}


def _add_workflow(
    paths: dict[str, dict[str, Any]],
    workflow: WorkflowInputs,
    refs: dict[type[BaseModel], Any],
    seen: set[str],
) -> None:
    """`POST /api/workflows/<name>/generate` and `/run`, typed by the workflow's parameters."""
    base = f"/api/workflows/{quote(workflow.name, safe='')}"
    ident = re.sub(r"\W", "_", workflow.name)
    for verb, answer, code, summary in (
        ("generate", GenerateResponse, 200, "Run {} and answer with its outputs"),
        ("run", RunCreated, 201, "Queue {}; poll /api/status/<run_id>"),
    ):
        paths[f"{base}/{verb}"] = {
            "post": {
                "operationId": _unique(f"{verb}_{ident}", seen),
                "summary": summary.format(workflow.name),
                "description": workflow.description,
                "tags": ["workflows"],
                "requestBody": _request_body(workflow.schema, multipart=True, required=False),
                "responses": {
                    str(code): _answer(code, answer, refs),
                    "default": _answer(0, ErrorBody, refs) | {"description": "An error"},
                },
            }
        }
