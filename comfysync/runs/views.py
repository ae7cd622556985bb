"""A run record as clients see it: the status body every run route answers with."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .base import (
    CANCELLED,
    DISPATCHING,
    FAILED,
    QUEUED,
    RUNNING,
    SUBMITTED,
    SUCCESS,
    UPLOADING,
    RunRecord,
)

# The store's statuses, in the words of the public API.
API_STATUS = {
    QUEUED: "not-started",
    DISPATCHING: "not-started",
    SUBMITTED: "not-started",
    RUNNING: "running",
    UPLOADING: "uploading",
    SUCCESS: "success",
    FAILED: "failed",
    CANCELLED: "cancelled",
}
API_STATUSES = tuple(dict.fromkeys(API_STATUS.values()))

# /api/task_status speaks of prompts: its older words for the same states.
TASK_STATUS = {
    "not-started": "pending",
    "running": "running",
    "uploading": "running",
    "success": "completed",
    "failed": "error",
    "cancelled": "cancelled",
}


def iso(stamp: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds, e.g. 2026-12-02T01:02:03.456Z."""
    if stamp is None:
        return None
    moment = datetime.fromtimestamp(stamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_body(record: RunRecord, queue_position: int | None = None) -> dict[str, Any]:
    """`GET /api/status/<run_id>`: the run, its outputs, its error, its progress."""
    result = record.result if record.status == SUCCESS else None
    error = record.error or {}
    started = record.started_at
    duration = None
    if record.ended_at is not None:
        duration = round(record.ended_at - (started or record.created_at), 3)
    body: dict[str, Any] = {
        "id": record.id,
        "run_id": record.id,
        "status": API_STATUS.get(record.status, record.status),
        "created_at": iso(record.created_at),
        "started_at": iso(started),
        "ended_at": iso(record.ended_at),
        "duration": duration,
        "outputs": _outputs(record) if result else [],
        "error": error.get("error") if error else None,
        "progress": {
            "current": record.progress.get("current", 0),
            "total": record.progress.get("total", 0),
            "message": record.progress.get("message", ""),
        },
        "prompt_id": record.prompt_id,
        "server": record.server,  # its name, never its address
        "priority": record.priority,
        "attempts": len(record.attempts),
    }
    if queue_position is not None:
        body["queue_position"] = queue_position
    if error:
        body["error_type"] = error.get("error_type")
        body["error_details"] = error
    if result:
        for key in ("url", "images", "storage", "timings", "execution_time", "texts", "warnings"):
            if key in result:
                body[key] = result[key]
    return body


def _outputs(record: RunRecord) -> list[dict[str, Any]]:
    """Files grouped by output node, ComfyUI's names beside the URL clients fetch."""
    by_node: dict[str, list[dict[str, Any]]] = {}
    for entry in record.files:
        stored, output = entry["stored"], entry["output"]
        by_node.setdefault(output["node_id"], []).append(
            {
                "url": stored["url"],
                "type": output["type"],
                "filename": output["filename"],
                "subfolder": output["subfolder"],
                "upload_duration": stored.get("upload_duration"),
            }
        )
    created = iso(record.ended_at)
    return [
        {"node_id": node, "images": images, "created_at": created}
        for node, images in by_node.items()
    ]


def task_body(record: RunRecord, queue_position: int | None = None) -> dict[str, Any]:
    """`/api/task_status/<run_id>`: the run in the words of the prompt status route."""
    status = TASK_STATUS[API_STATUS[record.status]]
    body: dict[str, Any] = {"status": status, "prompt_id": record.prompt_id, "run_id": record.id}
    if queue_position is not None:
        body["queue_position"] = queue_position
    if record.status == SUCCESS and record.result:
        body["images"] = record.result.get("images", [])
        body["execution_time"] = record.result.get("execution_time")
    elif record.error:
        body["error"] = record.error.get("error")
    return body
