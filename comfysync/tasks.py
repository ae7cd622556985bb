"""Status and history of prompts, read from ComfyUI (Jobs API where it exists).

With a fleet, a prompt id is looked for on each server in turn (the server
that ran it answers; the others do not know it), and view URLs name the
server that holds the file by its name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .comfy.backend import ComfyBackend
from .comfy.protocol import NodeOutputs, outcome_from_history, redact_paths
from .images import content_type_for
from .outputs import list_files, list_texts

if TYPE_CHECKING:
    from .gateway import Gateway


def view_url(
    gateway: Gateway, filename: str, subfolder: str, kind: str, server: str | None = None
) -> str:
    """A URL on this service that streams one of ComfyUI's files (of `server`, in a fleet)."""
    params = {"filename": filename, "subfolder": subfolder, "type": kind}
    if server is not None and len(gateway.backends) > 1:
        params["server"] = server
    return f"{gateway.settings.service.server_base_url}/api/view?{urlencode(params)}"


def image_entries(
    gateway: Gateway, outputs: NodeOutputs, server: str | None = None
) -> list[dict[str, Any]]:
    """Every output file of a prompt, with a URL that points at this service."""
    return [
        {
            "url": view_url(gateway, f.filename, f.subfolder, f.type, server),
            "filename": f.filename,
            "subfolder": f.subfolder,
            "type": f.type,
            "node_id": f.node_id,
            "kind": f.kind,
            "content_type": content_type_for(f.filename),
        }
        for f in list_files(outputs)
    ]


def _servers_to_ask(gateway: Gateway) -> list[ComfyBackend]:
    """The servers a lookup asks, in order: with a fleet, the down ones are skipped
    (the others may know the prompt; a prompt of a down server is being moved)."""
    backends = gateway.backends
    return backends if len(backends) == 1 else [b for b in backends if b.up]


def task_status(gateway: Gateway, prompt_id: str) -> dict[str, Any]:
    """Where a prompt stands: pending, running, completed, error, cancelled or not_found."""
    cancelled = False
    for backend in _servers_to_ask(gateway):
        found = _task_status_on(gateway, backend, prompt_id)
        if found is not None:
            return found
        cancelled = cancelled or prompt_id in backend.cancelled
    return {"status": "cancelled" if cancelled else "not_found", "prompt_id": prompt_id}


def _task_status_on(
    gateway: Gateway, backend: ComfyBackend, prompt_id: str
) -> dict[str, Any] | None:
    """The prompt's state on one server; None when that server does not know it.

    The queue is read before the history, so a prompt that finishes between
    the two reads is reported completed, never not_found.
    """
    client = backend.client
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
        return None
    return history_item(gateway, prompt_id, entry, backend.name)


def find_history(gateway: Gateway, prompt_id: str) -> tuple[ComfyBackend, Any] | None:
    """The server whose history holds the prompt, and the entry; None when none does."""
    for backend in _servers_to_ask(gateway):
        entry = backend.client.history(prompt_id)
        if entry:
            return backend, entry
    return None


def history_item(
    gateway: Gateway, prompt_id: str, entry: Any, server: str | None = None
) -> dict[str, Any]:
    """One finished prompt as the status and history endpoints report it."""
    outcome = outcome_from_history(entry)
    if outcome is None:
        return {"status": "running", "prompt_id": prompt_id}
    item: dict[str, Any] = {"prompt_id": prompt_id}
    if outcome.status == "success":
        item["status"] = "completed"
        item["images"] = image_entries(gateway, outcome.outputs, server)
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
    if server is not None and len(gateway.backends) > 1:
        item["server"] = server
    return item


def history(gateway: Gateway, max_items: int | None) -> list[dict[str, Any]]:
    """The newest finished prompts of every server, newest first."""
    items: list[tuple[float, dict[str, Any]]] = []
    for backend in _servers_to_ask(gateway):
        entries = backend.client.histories(max_items)
        for pid, entry in entries.items():
            outcome = outcome_from_history(entry)
            ended = (outcome.ended_ms if outcome else None) or 0
            items.append((ended, history_item(gateway, pid, entry, backend.name)))
    if len(gateway.backends) == 1:
        return [item for _, item in reversed(items)]  # ComfyUI's own order, newest first
    items.sort(key=lambda pair: pair[0], reverse=True)
    return [item for _, item in items[:max_items]]


def images_of(gateway: Gateway, prompt_id: str) -> list[dict[str, Any]] | None:
    """The output files of one finished prompt; None when no server has history of it."""
    found = find_history(gateway, prompt_id)
    if found is None:
        return None
    backend, entry = found
    return image_entries(gateway, entry.get("outputs") or {}, backend.name)
