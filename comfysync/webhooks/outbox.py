"""The deliveries a run's change makes, to be recorded in the same transaction."""

from __future__ import annotations

import time
import uuid
from typing import Any

from ..config import WebhookSettings
from ..runs.base import Delivery, RunRecord, dump_json
from ..runs.views import iso, record_body
from .target import OF_RUN_EVENT, PROGRESS, WebhookTarget, stored_target


def message(kind: str, data: dict[str, Any], at: float) -> str:
    """A webhook body: `{"type", "timestamp", "data"}`, as Standard Webhooks suggests."""
    return dump_json({"type": kind, "timestamp": iso(at), "data": data})


def new_delivery(run_id: str, kind: str, url: str, body: str, at: float) -> Delivery:
    """A pending delivery, due now; its id is the `webhook-id` of all its attempts."""
    return Delivery(
        id=f"msg_{uuid.uuid4().hex}",
        run_id=run_id,
        event=kind,
        url=url,
        body=body,
        created_at=at,
        next_at=at,
    )


def on_end(record: RunRecord, run_event: str, settings: WebhookSettings) -> list[Delivery]:
    """The deliveries of a run ending as `record` (its state after the change) says.

    The body's `data` is the run's status body, as `GET /api/status/<run_id>` answers it.
    """
    kind = OF_RUN_EVENT.get(run_event)
    target = stored_target(record.request, settings.url)
    if kind is None or target is None or not target.wants(kind):
        return []
    now = time.time()
    return [new_delivery(record.id, kind, target.url, message(kind, record_body(record), now), now)]


def progress_target(record: RunRecord, settings: WebhookSettings) -> WebhookTarget | None:
    """The run's webhook when it asks for `run.progress` (read once per run, not per frame)."""
    target = stored_target(record.request, settings.url)
    return target if target is not None and target.wants(PROGRESS) else None


def on_progress(record: RunRecord, progress: dict[str, Any], target: WebhookTarget) -> Delivery:
    """A `run.progress` delivery to `target` (see `progress_target`)."""
    now = time.time()
    body = message(PROGRESS, {"run_id": record.id, "progress": progress}, now)
    return new_delivery(record.id, PROGRESS, target.url, body, now)


def delivery_body(deliveries: list[Delivery]) -> dict[str, Any] | None:
    """The `webhook` field of a run's status: the state of its latest final-event delivery."""
    finals = [d for d in deliveries if d.event != PROGRESS] or deliveries
    if not finals:
        return None
    latest = finals[-1]
    return {
        "id": latest.id,
        "event": latest.event,
        "url": latest.url,
        "state": latest.state,
        "attempts": latest.attempts,
        "last_status": latest.last_status,
        "last_error": latest.last_error,
        "delivered_at": iso(latest.delivered_at),
        "next_attempt_at": iso(latest.next_at) if latest.state == "pending" else None,
    }
