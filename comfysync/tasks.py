"""Status and history of prompts, read from ComfyUI (Jobs API where it exists)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .comfy.protocol import NodeOutputs, outcome_from_history, redact_paths
from .images import content_type_for
from .outputs import list_files, list_texts

if TYPE_CHECKING:
    from .gateway import Gateway


def view_url(gateway: Gateway, filename: str, subfolder: str, kind: str) -> str:
    """A URL on this service that streams one of ComfyUI's files."""
    query = urlencode({"filename": filename, "subfolder": subfolder, "type": kind})
    return f"{gateway.settings.service.server_base_url}/api/view?{query}"


def image_entries(gateway: Gateway, outputs: NodeOutputs) -> list[dict[str, Any]]:
    """Every output file of a prompt, with a URL that points at this service."""
    return [
        {
            "url": view_url(gateway, f.filename, f.subfolder, f.type),
            "filename": f.filename,
            "subfolder": f.subfolder,
            "type": f.type,
            "node_id": f.node_id,
            "kind": f.kind,
            "content_type": content_type_for(f.filename),
        }
        for f in list_files(outputs)
    ]


def task_status(gateway: Gateway, prompt_id: str) -> dict[str, Any]:
    """Where a prompt stands: pending, running, completed, error, cancelled or not_found.

    The queue is read before the history, so a prompt that finishes between
    the two reads is reported completed, never not_found.
    """
    client = gateway.backend().client
    queue = client.queue()
    running = queue.get("queue_running", [])
    if any(item[1] == prompt_id for item in running):
        return {"status": "running", "prompt_id": prompt_id}
    pending = sorted(queue.get("queue_pending", []), key=lambda item: item[0])
    for position, item in enumerate(pending):
        if item[1] == prompt_id:
            return {"status": "pending", "prompt_id": prompt_id, "queue_position": position}
    entry = client.history(prompt_id)
    if not entry:
        state = "cancelled" if prompt_id in gateway.backend().cancelled else "not_found"
        return {"status": state, "prompt_id": prompt_id}
    return history_item(gateway, prompt_id, entry)


def history_item(gateway: Gateway, prompt_id: str, entry: Any) -> dict[str, Any]:
    """One finished prompt as the status and history endpoints report it."""
    outcome = outcome_from_history(entry)
    if outcome is None:
        return {"status": "running", "prompt_id": prompt_id}
    item: dict[str, Any] = {"prompt_id": prompt_id}
    if outcome.status == "success":
        item["status"] = "completed"
        item["images"] = image_entries(gateway, outcome.outputs)
        texts = list_texts(outcome.outputs)
        if texts:
            item["texts"] = texts
    elif outcome.status == "interrupted":
        item["status"] = "cancelled"
    else:
        error = outcome.error or {}
        item["status"] = "error"
        item["error"] = redact_paths(error.get("exception_message") or "execution failed")
        item["node_id"] = error.get("node_id")
        item["node_type"] = error.get("node_type")
        item["exception_type"] = error.get("exception_type")
    item["execution_time"] = outcome.execution_time
    return item


def history(gateway: Gateway, max_items: int | None) -> list[dict[str, Any]]:
    """The newest finished prompts, newest first."""
    entries = gateway.backend().client.histories(max_items)
    items = [history_item(gateway, pid, entry) for pid, entry in entries.items()]
    items.reverse()
    return items


def images_of(gateway: Gateway, prompt_id: str) -> list[dict[str, Any]] | None:
    """The output files of one finished prompt; None when ComfyUI has no history of it."""
    entry = gateway.backend().client.history(prompt_id)
    if not entry:
        return None
    return image_entries(gateway, entry.get("outputs") or {})
