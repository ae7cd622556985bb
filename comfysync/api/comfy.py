"""ComfyUI's health (`/api/test_comfy`) and the gateway's own status."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from ..errors import GatewayError
from ..models.responses import ComfyHealth, ComfyPassThrough, GatewayStatus, Success
from ..openapi.operations import Query, operation
from .servers import server_named

SERVER = Query("server", {"type": "string"}, "A ComfyUI server's name (default: the first)")

bp = Blueprint("comfy", __name__)


@bp.get("/test_comfy")
@operation(query=(SERVER,), answers={200: ComfyHealth}, tag="comfyui")
def test_comfy():
    """Ask ComfyUI for `/system_stats`; 503 with the reason when it cannot be reached.

    With a fleet, `?server=` names the server (default: the first); `/api/servers`
    shows them all.
    """
    backend = server_named(request.args.get("server"))
    url = f"{backend.client.base_url}/system_stats"
    try:
        stats = backend.client.system_stats()
    except GatewayError as err:
        body = err.to_dict() | {"comfyui_url": url}
        return jsonify(body), 503
    return {"status": "success", "comfyui_url": url, "response": {"system_stats": stats}}


@bp.get("/status")
@operation(answers={200: GatewayStatus}, tag="comfyui")
def status():
    """The gateway's view: its WebSocket to ComfyUI and the requests it holds."""
    gateway = current_app.extensions["comfysync"]
    servers = [backend.watcher.status() for backend in gateway.backends]
    return {"status": "success", "shutting_down": gateway.shutting_down, "servers": servers}


# Pass-through for operators (seed 001): ComfyUI's own view, unchanged.


@bp.get("/comfyui-queue-status")
@operation(query=(SERVER,), answers={200: ComfyPassThrough}, tag="comfyui")
def comfyui_queue():
    """ComfyUI's `/queue`: what it is running and what waits in its own queue."""
    return server_named(request.args.get("server")).client.queue()


@bp.get("/comfyui-system-stats")
@operation(query=(SERVER,), answers={200: ComfyPassThrough}, tag="comfyui")
def comfyui_system_stats():
    """ComfyUI's `/system_stats`."""
    return server_named(request.args.get("server")).client.system_stats()


@bp.post("/comfyui-interrupt")
@operation(query=(SERVER,), answers={200: Success}, tag="comfyui")
def comfyui_interrupt():
    """Interrupt whatever ComfyUI is executing now (every client's prompt)."""
    server_named(request.args.get("server")).client.interrupt()
    return {"status": "success"}
