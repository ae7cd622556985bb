"""`GET /metrics`: Prometheus text, every worker's samples added up (see `comfysync.metrics`).

Outside `/api` and its keys, so a scraper needs none; with METRICS_TOKEN set
it must send that token as a bearer.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, request

from .. import metrics
from ..errors import Unauthorized
from ..openapi.operations import TEXT, operation

bp = Blueprint("metrics", __name__)


def _in_flight() -> dict[str, int]:
    gateway = current_app.extensions["comfysync"]
    return {backend.name: gateway.runs.in_flight(backend.name) for backend in gateway.backends}


@bp.get("/metrics")
@operation(answers={200: TEXT}, tag="servers", public=True)
def scrape():
    """Prometheus' text format."""
    gateway = current_app.extensions["comfysync"]
    token = gateway.settings.service.metrics_token
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            raise Unauthorized("Send METRICS_TOKEN as 'Authorization: Bearer <token>'")
    store = metrics.StoreCollector(gateway.runs.queued_count, _in_flight)
    return Response(metrics.exposition(store), mimetype=metrics.CONTENT_TYPE)


@bp.after_app_request
def count_request(response: Response) -> Response:
    """Every answer, by route (the Flask endpoint) and status."""
    metrics.REQUESTS.labels(request.endpoint or "unmatched", str(response.status_code)).inc()
    return response
