"""HTTP routes: one blueprint per resource, the `/api` ones nested under one parent."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app

from .. import playground
from ..auth import require_api_key
from ..errors import ShuttingDown
from ..ratelimit import add_rate_headers, check_rate
from . import comfy, events, files, generate, metrics, runs, servers, tasks, workflows

api = Blueprint("api", __name__, url_prefix="/api")
api.before_request(require_api_key)
api.before_request(check_rate)
api.after_request(add_rate_headers)


@api.before_request
def _refuse_during_shutdown() -> None:
    if current_app.extensions["comfysync"].shutting_down:
        raise ShuttingDown("The gateway is shutting down; retry on another instance")


for _module in (generate, runs, events, comfy, workflows, tasks, servers):
    api.register_blueprint(_module.bp)


def register(app: Flask) -> None:
    """Attach the `/api` blueprints, the file server, the probes and the playground page."""
    app.register_blueprint(api)
    app.register_blueprint(files.bp)
    app.register_blueprint(servers.probes)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(playground.bp)
