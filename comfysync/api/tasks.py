"""Prompt status, history, images, and streaming ComfyUI's files through the gateway."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, current_app, request

from .. import tasks
from ..auth import may_see
from ..disposition import content_disposition
from ..errors import BadRequest, NotFound
from ..images import content_type_for
from ..models.responses import History, HistoryEntry, PromptImages, TaskStatus
from ..numbers import parse_whole
from ..openapi.operations import FILE, Query, operation
from ..runs.base import QUEUED
from ..runs.views import task_body
from ..workflows.files import name_problem
from .comfy import SERVER
from .servers import server_named

bp = Blueprint("tasks", __name__)

# Media types a browser could run as a page of our origin: always downloaded.
_ACTIVE_TYPES = ("text/html", "application/javascript", "text/javascript", "text/css")


@bp.get("/task_status/<prompt_id>")
@operation(answers={200: TaskStatus}, tag="comfyui")
def task_status(prompt_id: str):
    """pending (with queue_position), running, completed, error, cancelled or not_found.

    A run id is accepted too: the run's prompt, or its place in the gateway's queue.
    """
    gateway = current_app.extensions["comfysync"]
    record = gateway.runs.get(prompt_id)
    if record is not None and may_see(record):
        position = gateway.runs.queue_position(record.id) if record.status == QUEUED else None
        return task_body(record, position)
    return tasks.task_status(gateway, prompt_id)


@bp.get("/history")
@operation(
    query=(Query("max_items", {"type": "integer", "minimum": 1, "default": 20}),),
    answers={200: History},
    tag="comfyui",
)
def history():
    """The newest finished prompts (`?max_items=`, default 20), newest first."""
    max_items = parse_whole(request.args.get("max_items", "20"))
    if max_items is None or max_items < 1:
        raise BadRequest("'max_items' must be a positive integer", field="max_items")
    items = tasks.history(current_app.extensions["comfysync"], max_items)
    return {"status": "success", "history": items}


@bp.get("/history/<prompt_id>")
@operation(answers={200: HistoryEntry}, tag="comfyui")
def history_entry(prompt_id: str):
    """One prompt's outcome and output files."""
    gateway = current_app.extensions["comfysync"]
    found = tasks.find_history(gateway, prompt_id)
    if found is None:
        raise NotFound(f"No history for prompt {prompt_id}", prompt_id=prompt_id)
    backend, entry = found
    return {"status": "success"} | tasks.history_item(gateway, prompt_id, entry, backend.name)


@bp.get("/image/<prompt_id>")
@operation(answers={200: PromptImages}, tag="comfyui")
def images(prompt_id: str):
    """The output files of one finished prompt."""
    found = tasks.images_of(current_app.extensions["comfysync"], prompt_id)
    if found is None:
        raise NotFound(f"No history for prompt {prompt_id}", prompt_id=prompt_id)
    return {"status": "success", "prompt_id": prompt_id, "images": found}


@bp.get("/view")
@operation(
    query=(
        Query("filename", {"type": "string"}),
        Query("subfolder", {"type": "string"}),
        Query("type", {"enum": ["output", "temp"], "default": "output"}),
        SERVER,
    ),
    answers={200: FILE},
    tag="comfyui",
)
def view():
    """Stream one of ComfyUI's output or temp files (the URLs in status and history)."""
    filename = request.args.get("filename", "")
    subfolder = request.args.get("subfolder", "")
    kind = request.args.get("type", "output")
    if kind not in ("output", "temp"):
        raise BadRequest("'type' must be 'output' or 'temp'")
    # ComfyUI reads "name [input]" from its input folder whatever `type` says.
    problem = name_problem(filename) if filename else "a file name"
    if problem is not None:
        raise BadRequest(f"'filename' must be {problem}", field="filename")
    parts = subfolder.replace("\\", "/").split("/")
    if subfolder.startswith(("/", "\\")) or any(p and name_problem(p) for p in parts):
        raise BadRequest("'subfolder' must be a relative folder without '..'", field="subfolder")
    upstream = server_named(request.args.get("server")).client.open_view(filename, subfolder, kind)

    def body():
        try:
            yield from upstream
        finally:
            upstream.close()

    content_type = content_type_for(filename)
    shown: Literal["inline", "attachment"] = "inline"
    if content_type.startswith(_ACTIVE_TYPES) or "xml" in content_type:
        content_type, shown = "application/octet-stream", "attachment"
    headers = {
        "Content-Disposition": content_disposition(shown, filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    length = upstream.headers.get("Content-Length")
    if length:
        headers["Content-Length"] = length
    return Response(body(), mimetype=content_type, headers=headers)
