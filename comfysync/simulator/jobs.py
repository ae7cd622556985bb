"""ComfyUI 0.27's Jobs API (/api/jobs...), built on the queue and history."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from .history import PromptQueue, QueueItem

STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")


def is_canonical_uuid(value: Any) -> bool:
    """True for a lower-case hyphenated UUID string, i.e. str(uuid.UUID(x)) == x."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _prune(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if v is not None}


def _workflow_id(extra: dict[str, Any]) -> Any:
    pnginfo = extra.get("extra_pnginfo")
    if isinstance(pnginfo, dict) and isinstance(pnginfo.get("workflow"), dict):
        return pnginfo["workflow"].get("id")
    return None


def _queued_job(item: QueueItem, status: str) -> dict[str, Any]:
    return _prune(
        {
            "id": item.prompt_id,
            "status": status,
            "priority": item.number,
            "create_time": item.extra_data.get("create_time"),
            "outputs_count": 0,
            "workflow_id": _workflow_id(item.extra_data),
        }
    )


def _outputs_summary(outputs: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    count = 0
    first_output = first_preview = None
    first_text: dict[str, Any] | None = None
    for node_id, node_out in outputs.items():
        if not isinstance(node_out, dict):
            continue
        for media, items in node_out.items():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict):
                    count += 1
                    entry = {**item, "nodeId": node_id, "mediaType": media}
                    if first_output is None and item.get("type") == "output":
                        first_output = entry
                    if first_preview is None and "filename" in item:
                        first_preview = entry
                elif isinstance(item, str) and media == "text" and first_text is None:
                    first_text = {"content": item[:1024]}
                    if len(item) > 1024:
                        first_text["truncated"] = True
                    first_text.update({"nodeId": node_id, "mediaType": "text"})
    return count, first_output or first_preview or first_text


def _history_job(prompt_id: str, entry: dict[str, Any], detail: bool) -> dict[str, Any]:
    prompt = entry["prompt"]
    status = entry.get("status") or {}
    messages = status.get("messages", [])
    kinds = [m[0] for m in messages]
    if status.get("status_str") == "success":
        state = "completed"
    else:
        state = "cancelled" if "execution_interrupted" in kinds else "failed"
    start = next((m[1].get("timestamp") for m in messages if m[0] == "execution_start"), None)
    end = (
        messages[-1][1].get("timestamp")
        if messages
        and kinds[-1] in ("execution_success", "execution_error", "execution_interrupted")
        else None
    )
    error = next((m[1] for m in messages if m[0] == "execution_error"), None)
    count, preview = _outputs_summary(entry.get("outputs", {}))
    job = {
        "id": prompt_id,
        "status": state,
        "priority": prompt[0],
        "create_time": prompt[3].get("create_time"),
        "execution_start_time": start,
        "execution_end_time": end,
        "execution_error": error if state == "failed" else None,
        "outputs_count": count,
        "preview_output": preview,
        "workflow_id": _workflow_id(prompt[3]),
    }
    job = _prune(job)
    if detail:
        job["outputs"] = entry.get("outputs", {})
        job["execution_status"] = status
        job["workflow"] = {"prompt": prompt[2], "extra_data": prompt[3]}
    return job


def _all_jobs(queue: PromptQueue) -> list[dict[str, Any]]:
    jobs = [_queued_job(i, "in_progress") for i in queue.running.values()]
    jobs += [_queued_job(i, "pending") for i in queue.pending()]
    jobs += [_history_job(pid, e, False) for pid, e in queue.history.items()]
    return jobs


def _error(text: str, status: int = 400, **extra: Any) -> web.Response:
    return web.json_response({"error": text, **extra}, status=status)


def list_jobs(request: web.Request, queue: PromptQueue) -> web.Response:
    """GET /api/jobs with status/workflow_id filters, sorting and paging."""
    q = request.rel_url.query
    wanted: set[str] | None = None
    raw_status = q.get("status", "")
    if raw_status.strip():
        values = [s.strip().lower() for s in raw_status.split(",") if s.strip()]
        bad = [s for s in values if s not in STATUSES]
        if bad:
            return _error(
                f"Invalid status value(s): {', '.join(bad)}. Valid values: {', '.join(STATUSES)}"
            )
        wanted = set(values)
    sort_by = q.get("sort_by", "created_at")
    if sort_by not in ("created_at", "execution_duration"):
        return _error("sort_by must be 'created_at' or 'execution_duration'")
    sort_order = q.get("sort_order", "desc")
    if sort_order not in ("asc", "desc"):
        return _error("sort_order must be 'asc' or 'desc'")
    limit: int | None = None
    if "limit" in q:
        try:
            limit = int(q["limit"])
        except ValueError:
            return _error("limit must be an integer")
        if limit <= 0:
            return _error("limit must be a positive integer")
    offset = 0
    if "offset" in q:
        try:
            offset = max(0, int(q["offset"]))
        except ValueError:
            return _error("offset must be an integer")
    jobs = _all_jobs(queue)
    if wanted is not None:
        jobs = [j for j in jobs if j["status"] in wanted]
    workflow_id = q.get("workflow_id")
    if workflow_id is not None:
        jobs = [j for j in jobs if j.get("workflow_id") == workflow_id]

    def key(job: dict[str, Any]) -> float:
        if sort_by == "created_at":
            return job.get("create_time") or 0
        if "execution_start_time" in job and "execution_end_time" in job:
            return job["execution_end_time"] - job["execution_start_time"]
        return 0

    jobs.sort(key=key, reverse=sort_order == "desc")
    total = len(jobs)
    page = jobs[offset : offset + limit if limit is not None else None]
    return web.json_response(
        {
            "jobs": page,
            "pagination": {
                "offset": offset,
                "limit": limit,
                "total": total,
                "has_more": offset + len(page) < total,
            },
        }
    )


def get_job(request: web.Request, queue: PromptQueue) -> web.Response:
    """GET /api/jobs/{id}: short form for queued jobs, full form for history."""
    job_id = request.match_info["job_id"]
    for item in queue.running.values():
        if item.prompt_id == job_id:
            return web.json_response(_queued_job(item, "in_progress"))
    for item in queue.pending():
        if item.prompt_id == job_id:
            return web.json_response(_queued_job(item, "pending"))
    if job_id in queue.history:
        return web.json_response(_history_job(job_id, queue.history[job_id], True))
    return _error("Job not found", 404)


def cancel_one(job_id: str, queue: PromptQueue, interrupt: Any) -> bool:
    """Dequeue a pending job or interrupt the running one; False otherwise."""
    if queue.delete(job_id):
        return True
    if queue.find_running(job_id) is not None:
        return bool(interrupt(job_id))
    return False


async def cancel_batch(request: web.Request, queue: PromptQueue, interrupt: Any) -> web.Response:
    """POST /api/jobs/cancel {"job_ids": [...]}: all-or-nothing id check, then cancel."""
    try:
        body = json.loads(await request.text())
    except ValueError:
        return _error("Request body must be valid JSON")
    ids = body.get("job_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list):
        return _error("job_ids must be a list")
    invalid = [x if isinstance(x, str) else repr(x) for x in ids if not is_canonical_uuid(x)]
    if invalid:
        return _error("job_ids contains invalid id(s)", invalid_ids=invalid)
    hit = False
    for job_id in ids:
        hit = cancel_one(job_id, queue, interrupt) or hit
    return web.json_response({"cancelled": hit})
