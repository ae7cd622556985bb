"""API keys: when keys are configured, every `/api` route needs one, within its scopes.

Which scopes a route needs is decided here, in one table; a key that may
not read a run is told the run does not exist, so ids leak nothing.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from flask import current_app, g, request

from .errors import Forbidden, NotFound, Unauthorized
from .keys import ADMIN, GENERATE, RUNS, ApiKey, digest

if TYPE_CHECKING:
    from .generation import GenerationSpec
    from .runs.base import RunRecord

# Endpoint -> the scopes, any of which lets a key call it. Absent: any valid key.
_ANY_WORK = frozenset({GENERATE, RUNS})
ROUTE_SCOPES: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        (
            "api.generate.generate_url",
            "api.generate.generate_file",
            "api.runs.create_run",
            "api.runs.create_task",
            "api.workflows.queue_workflow",
            "api.workflows.list_workflows",
            "api.workflows.workflow_schema",
        ),
        frozenset({GENERATE}),
    ),
    **dict.fromkeys(
        (
            "api.runs.run_status",
            "api.runs.task",
            "api.runs.cancel_run",
            "api.runs.list_runs",
            "api.events.run_event_stream",
            "api.events.resend_webhook",
            "api.tasks.task_status",
            "api.tasks.images",
            "api.tasks.history_entry",
        ),
        frozenset({RUNS, GENERATE}),
    ),
    # Output URLs in answers point here: whoever may run or read runs may fetch them.
    "api.tasks.view": _ANY_WORK,
    **dict.fromkeys(
        (
            "api.tasks.history",
            "api.comfy.status",
            "api.comfy.comfyui_queue",
            "api.comfy.comfyui_system_stats",
            "api.comfy.comfyui_interrupt",
            "api.servers.list_servers",
        ),
        frozenset({ADMIN}),
    ),
}


def all_keys() -> tuple[ApiKey, ...]:
    return current_app.extensions["comfysync"].keys


def current_key() -> ApiKey | None:
    """The key of this request (None: keys are off)."""
    return g.get("api_key")


def require_api_key() -> None:
    """`before_request` hook: find the key of `Authorization: Bearer <key>`, check its scopes.

    Every configured key is compared (in constant time), so timing says nothing.

    :raises Unauthorized: keys are configured and none matches.
    :raises Forbidden: the key's scopes do not cover this route.
    """
    keys = all_keys()
    # OPTIONS too: answered without a key it told anyone every route's methods.
    if not keys:
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    supplied = digest(token.strip()) if scheme.lower() == "bearer" and token.strip() else b""
    found = None
    for key in keys:
        if hmac.compare_digest(supplied, key.digest):
            found = key
    if found is None:
        raise Unauthorized()
    g.api_key = found
    needed = ROUTE_SCOPES.get(request.endpoint or "")
    if needed is not None and not found.scopes & needed:
        raise Forbidden(
            f"The key {found.name!r} may not call this route (needs scope "
            f"{' or '.join(sorted(needed))})",
            key=found.name,
        )


def check_may_run(spec: GenerationSpec) -> None:
    """Refuse a workflow the key may not run (a key limited to workflows runs no inline graph).

    :raises Forbidden: naming the workflow.
    """
    key = current_key()
    if key is not None and not key.may_run(spec.workflow):
        what = f"the workflow {spec.workflow!r}" if spec.workflow else "inline workflows"
        raise Forbidden(f"The key {key.name!r} may not run {what}", key=key.name)


def may_see(record: RunRecord) -> bool:
    """Whether this request's key may read the run: its own, or any with the admin scope."""
    key = current_key()
    return key is None or key.sees_everything or record.key_name == key.name


def check_may_see(record: RunRecord | None, run_id: str) -> RunRecord:
    """The run, when this request may read it.

    :raises NotFound: no such run, or not one this key may read (the same answer).
    """
    if record is None or not may_see(record):
        raise NotFound(f"No run {run_id}", run_id=run_id)
    return record


def key_name() -> str | None:
    """The name of this request's key, for the run record and logs."""
    key = current_key()
    return key.name if key is not None else None


def scoped_idempotency_key(value: str | None) -> str | None:
    """An `Idempotency-Key` as the store keeps it: per API key, so two keys never collide
    (nor learn of each other's runs through a shared key)."""
    key = current_key()
    if value is None or key is None:
        return value
    return f"{key.name}:{value}"
