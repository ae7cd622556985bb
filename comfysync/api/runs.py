"""Runs: the async API (`/api/run`, `/api/status/<run_id>`, `/api/runs`, cancel) and
its seed-001 aliases (`/api/tasks/...`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from ..auth import check_may_run, check_may_see, key_name, may_see, scoped_idempotency_key
from ..errors import BadRequest
from ..events.frames import live_view
from ..generation import GenerationSpec, start_run
from ..models.requests import RunRequest
from ..models.responses import RunCreated, RunList, RunStatus, TaskCreated
from ..numbers import parse_whole
from ..openapi.operations import EVENTS, Query, operation
from ..runs.base import IN_FLIGHT, QUEUED, RUNNING, STATUSES, seq_cursor
from ..runs.views import API_STATUS, API_STATUSES, record_body
from ..webhooks.outbox import delivery_body
from .body import read_body
from .events import event_stream, wants_event_stream

IDEMPOTENCY_KEY = Query(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255},
    "The same key and body give the same run",
    where="header",
)

bp = Blueprint("runs", __name__)

_MAX_KEY = 255


def accept(body: Any, files: dict[str, bytes]) -> tuple[str, int, dict[str, str]]:
    """Record a run from a `/api/generate`-shaped body; its id, the status code, headers."""
    gateway = current_app.extensions["comfysync"]
    if isinstance(body, dict) and "deployment_id" in body and "workflow" not in body:
        # ComfyUI Deploy clients name the workflow this way.
        body = {k: v for k, v in body.items() if k != "deployment_id"} | {
            "workflow": body["deployment_id"]
        }
    spec = GenerationSpec.from_body(body, files)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= _MAX_KEY:
        raise BadRequest(f"'Idempotency-Key' must be 1 to {_MAX_KEY} characters")
    check_may_run(spec)
    record, created = start_run(
        gateway,
        spec,
        body,
        mode="async",
        priority=spec.priority,
        idempotency_key=scoped_idempotency_key(key),
        key_name=key_name(),
    )
    headers = {"Location": f"/api/status/{record.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return record.id, 201, headers


@bp.post("/run")
@operation(
    body=RunRequest,
    multipart=True,
    query=(IDEMPOTENCY_KEY,),
    answers={201: RunCreated, 200: EVENTS},
    tag="runs",
)
def create_run():
    """Queue a run and answer at once with its id; poll `/api/status/<run_id>`.

    With `Accept: text/event-stream`, the answer is the run's event stream.
    """
    run_id, code, headers = accept(*read_body())
    if wants_event_stream():
        return event_stream(current_app.extensions["comfysync"], run_id)
    return {"run_id": run_id}, code, headers


@bp.post("/tasks/create")
@operation(
    body=RunRequest,
    multipart=True,
    query=(IDEMPOTENCY_KEY,),
    answers={201: TaskCreated},
    tag="runs",
)
def create_task():
    """`/api/run` in the seed-001 form: `{"task_id"}`."""
    run_id, code, headers = accept(*read_body())
    return {"task_id": run_id}, code, headers


def _record_response(run_id: str) -> dict[str, Any]:
    store = current_app.extensions["comfysync"].runs
    record = check_may_see(store.get(run_id), run_id)
    position = store.queue_position(run_id) if record.status == QUEUED else None
    body = record_body(record, position)
    if record.status in IN_FLIGHT:
        started, progress = live_view(store, run_id)
        if started:
            body["status"] = API_STATUS[RUNNING]
        if progress is not None:
            body["progress"] = progress
    webhook = delivery_body(store.deliveries(run_id))
    if webhook is not None:
        body["webhook"] = webhook
    return body


@bp.get("/status/<run_id>")
@operation(answers={200: RunStatus}, tag="runs")
def run_status(run_id: str):
    """The run record: status, outputs, error, progress, timings."""
    return _record_response(run_id)


@bp.get("/tasks/<task_id>")
@operation(answers={200: RunStatus}, tag="runs")
def task(task_id: str):
    """The run record, seed-001 style."""
    return _record_response(task_id)


@bp.post("/run/<run_id>/cancel")
@operation(answers={200: RunStatus}, tag="runs")
def cancel_run(run_id: str):
    """Cancel a queued or running run; answers the record."""
    gateway = current_app.extensions["comfysync"]
    check_may_see(gateway.runs.get(run_id), run_id)
    gateway.dispatcher.cancel(run_id)
    return _record_response(run_id)


@bp.get("/runs")
@operation(
    query=(
        Query("status", {"enum": list(API_STATUSES)}),
        Query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
        Query("cursor", {"type": "string"}, "next_cursor of the page before"),
    ),
    answers={200: RunList},
    tag="runs",
)
def list_runs():
    """Runs newest first: `?status=` (API words), `?limit=` (1-100), `?cursor=`."""
    store = current_app.extensions["comfysync"].runs
    status = request.args.get("status") or None
    if status is not None and status not in API_STATUSES:
        raise BadRequest(f"'status' must be one of {', '.join(API_STATUSES)}", field="status")
    limit = parse_whole(request.args.get("limit", "20"))
    if limit is None or not 1 <= limit <= 100:
        raise BadRequest("'limit' must be a whole number from 1 to 100", field="limit")
    cursor = request.args.get("cursor") or None
    wanted = [s for s in STATUSES if API_STATUS[s] == status] if status else []
    if len(wanted) > 1:
        records, next_cursor = _merged(store, wanted, limit, cursor)
    else:
        records, next_cursor = store.list_runs(
            status=wanted[0] if wanted else None, limit=limit, cursor=cursor
        )
    # A key without the admin scope lists only its own runs (a page may come out shorter).
    return {
        "runs": [record_body(r) for r in records if may_see(r)],
        "next_cursor": next_cursor,
    }


def _merged(store: Any, statuses: list[str], limit: int, cursor: str | None) -> tuple[list, Any]:
    """Several store statuses behind one API word ("not-started"): newest first, one page."""
    records = []
    for status in statuses:
        page, _ = store.list_runs(status=status, limit=limit, cursor=cursor)
        records.extend(page)
    records.sort(key=lambda r: r.seq, reverse=True)
    page = records[:limit]
    return page, (seq_cursor(page[-1].seq) if len(records) > limit else None)
