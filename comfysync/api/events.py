"""A run's live events (`/api/status/<run_id>/events`, SSE) and its webhook re-send."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, request

from ..auth import check_may_see
from ..disconnect import DisconnectMonitor
from ..errors import Conflict
from ..events.stream import last_event_id, run_events
from ..runs.base import PENDING, events_key
from ..runs.views import record_body

if TYPE_CHECKING:
    from ..gateway import Gateway

from ..models.responses import RunStatus
from ..openapi.operations import EVENTS, Query, operation

bp = Blueprint("events", __name__)

EVENT_STREAM = "text/event-stream"


def wants_event_stream() -> bool:
    """Whether the client asks for SSE (`Accept: text/event-stream` preferred over JSON)."""
    accept = request.accept_mimetypes
    return accept[EVENT_STREAM] > accept["application/json"]


def event_stream(
    gateway: Gateway, run_id: str, *, after: int = 0, cancel_on_gone: bool = False
) -> Response:
    """The SSE response of a run's events; with `cancel_on_gone`, a client leaving cancels it."""
    environ = request.environ
    store = gateway.runs
    state = {"gone": False}

    def on_gone() -> None:
        state["gone"] = True
        store.waiters.notify([events_key(run_id)])

    def body() -> Iterator[bytes]:
        monitor = DisconnectMonitor.attach(environ, on_gone)
        try:
            yield from run_events(
                store,
                run_id,
                after=after,
                heartbeat=gateway.settings.events.sse_heartbeat,
                stop=lambda: state["gone"] or gateway.released.is_set(),
            )
        finally:
            if monitor is not None:
                monitor.stop()
            if state["gone"] and cancel_on_gone:
                gateway.dispatcher.cancel(run_id)

    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # nginx: pass events on as they come
        "X-Run-Id": run_id,
        "Location": f"/api/status/{run_id}/events",
    }
    return Response(body(), mimetype=EVENT_STREAM, headers=headers)


@bp.get("/status/<run_id>/events")
@operation(
    query=(
        Query("Last-Event-ID", {"type": "string"}, "Resume after this event", where="header"),
        Query("last_event_id", {"type": "string"}, "Resume after this event"),
    ),
    answers={200: EVENTS},
    tag="runs",
)
def run_event_stream(run_id: str):
    """The run's events as Server-Sent Events; `Last-Event-ID` resumes after an event."""
    gateway = current_app.extensions["comfysync"]
    after = last_event_id(request.headers.get("Last-Event-ID"), request.args.get("last_event_id"))
    check_may_see(gateway.runs.get(run_id), run_id)
    return event_stream(gateway, run_id, after=after)


@bp.post("/run/<run_id>/webhook")
@operation(answers={202: RunStatus}, tag="runs")
def resend_webhook(run_id: str) -> tuple[dict[str, Any], int]:
    """Send the run's final webhook again (as a new attempt of the same message)."""
    gateway = current_app.extensions["comfysync"]
    store = gateway.runs
    record = check_may_see(store.get(run_id), run_id)
    if not record.finished:
        raise Conflict("The run has not ended; its webhook goes out when it does", run_id=run_id)
    finals = [d for d in store.deliveries(run_id) if d.event != "run.progress"]
    if not finals:
        raise Conflict("The run has no webhook to send", run_id=run_id)
    delivery = finals[-1]
    # A new round of attempts of the same message (same webhook-id), its retry window from now.
    delivery.state = PENDING
    delivery.attempts = 0
    delivery.created_at = delivery.next_at = time.time()
    store.save_delivery(delivery)
    return record_body(record) | {"webhook": {"id": delivery.id, "state": PENDING}}, 202
