"""`/openapi.json` (the API description) and `/docs` (Swagger UI, from its installed package).

Both outside `/api`, without a key: the description names routes and
workflows, never a server, a key or a file.
"""

from __future__ import annotations

import json
import logging
from importlib.metadata import PackageNotFoundError, version

from flask import Blueprint, Flask, Response, current_app
from flask_swagger_ui import get_swaggerui_blueprint

from ..errors import GatewayError
from ..openapi import build_document
from ..openapi.document import WorkflowInputs
from ..params import schema_json
from ..params.schema import inputs_schema

log = logging.getLogger(__name__)

bp = Blueprint("docs", __name__)
DOCUMENT = "/openapi.json"
_KEY = "comfysync.openapi"


def _workflows(app: Flask) -> list[WorkflowInputs]:
    """Each stored workflow's typed inputs; one that does not load is left out (and logged)."""
    store = app.extensions["comfysync"].workflows
    found = []
    for name in store.names():
        try:
            graph = store.load(name)
            described = schema_json(graph, store.declaration(name, graph))
        except GatewayError as err:
            log.warning("workflow %s left out of %s: %s", name, DOCUMENT, err.message)
            continue
        description = described.get("description") or f"The stored workflow {name}"
        found.append(WorkflowInputs(name, inputs_schema(described["parameters"]), description))
    return found


def _version() -> str:
    try:
        return version("comfysync")
    except PackageNotFoundError:
        return "1"


@bp.get(DOCUMENT)
def openapi_document():
    """The OpenAPI 3.1 description of this gateway."""
    return Response(current_app.config[_KEY], mimetype="application/json")


def register(app: Flask) -> None:
    """Build the document once, now that every route is registered, and serve it and `/docs`."""
    app.register_blueprint(bp)
    app.register_blueprint(
        get_swaggerui_blueprint("/docs", DOCUMENT, config={"app_name": "comfysync API"})
    )
    document = build_document(app, _workflows(app), _version())
    app.config[_KEY] = json.dumps(document).encode()
