"""The fleet: `GET /api/servers`, and `/health` and `/ready` for load balancers and orchestrators.

`/health` and `/ready` sit outside `/api`, so no API key is asked for: a
probe has none. Neither says anything a caller could use against a server
(no addresses, no error messages: the warm-up's failures show as their type).
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from ..comfy.backend import ComfyBackend
from ..errors import BadRequest
from ..models.responses import Health, Readiness, ServerList
from ..openapi.operations import operation

bp = Blueprint("servers", __name__)
probes = Blueprint("probes", __name__)


def server_named(name: str | None) -> ComfyBackend:
    """The server a `?server=` names; the first without one.

    :raises BadRequest: no server has that name.
    """
    gateway = current_app.extensions["comfysync"]
    if name is None or name == "":
        return gateway.backend()
    if not gateway.has_server(name):
        names = ", ".join(b.name for b in gateway.backends)
        raise BadRequest(f"No ComfyUI server {name!r}; the servers are {names}", field="server")
    return gateway.backend(name)


@bp.get("/servers")
@operation(answers={200: ServerList}, tag="servers")
def list_servers():
    """Each server: up or down, what it holds, jobs done, mean time per job, last error."""
    gateway = current_app.extensions["comfysync"]
    servers = []
    for backend in gateway.backends:
        entry = backend.status()
        entry["runs_in_flight"] = gateway.runs.in_flight(backend.name)
        servers.append(entry)
    return {"status": "success", "servers": servers, "queued": gateway.runs.queued_count()}


@probes.get("/health")
@operation(answers={200: Health}, tag="servers", public=True)
def health():
    """The process is alive and serving."""
    return {"status": "ok"}


@probes.get("/ready")
@operation(answers={200: Readiness, 503: Readiness}, tag="servers", public=True)
def ready():
    """Ready for work: some server is up (and warm, with WARMUP_WORKFLOW) and the queue is
    under its cap; 503 otherwise."""
    gateway = current_app.extensions["comfysync"]
    up = sum(1 for backend in gateway.backends if backend.up)
    queued = gateway.runs.queued_count()
    cap = gateway.settings.runs.max_queued
    reasons = []
    if gateway.shutting_down:
        reasons.append("shutting down")
    if up == 0:
        reasons.append("no ComfyUI server is up")
    if cap > 0 and queued >= cap:
        reasons.append("the queue is full")
    if up and not gateway.warmup.ready():
        reasons.append("warming up")
    body = {
        "status": "not_ready" if reasons else "ready",
        "servers_up": up,
        "servers": len(gateway.backends),
        "queued": queued,
    }
    if gateway.warmup.workflow:
        body["warmup"] = gateway.warmup.report()  # statuses and error types, never messages
    if reasons:
        body["reasons"] = reasons
    return jsonify(body), 503 if reasons else 200
