"""`POST /api/generate` (URL answer) and `POST /api/generate_file` (the bytes).

Both record a run and hold the request until it ends. With a wait budget
(`"wait"` or `Prefer: wait=`) a run still going when it is spent is handed
off: 202, `Location: /api/status/<run_id>`, and the run goes on. With
`Accept: text/event-stream` the answer is the run's event stream instead.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request, send_file

from ..auth import check_may_run, key_name
from ..disposition import content_disposition
from ..errors import GenerationTimeout
from ..generation import GenerationSpec, start_run
from ..holding import RecordedError, hold, wait_budget
from ..models import GenerateRequest
from ..models.responses import GenerateResponse, RunStatus
from ..openapi import FILE, operation
from ..runs.base import SUCCESS, RunRecord
from ..runs.views import record_body
from .body import read_body
from .events import event_stream, wants_event_stream

bp = Blueprint("generate", __name__)

# Past RUN_TIMEOUT the dispatcher records the timeout; a holder allows it this long to.
_RECORD_GRACE = 5.0


def _run(body: Any, files: dict[str, bytes]):
    gateway = current_app.extensions["comfysync"]
    spec = GenerationSpec.from_body(body, files)
    runs = gateway.settings.runs
    budget = wait_budget(spec.wait, request.headers.get("Prefer"), runs.sync_wait_max)
    check_may_run(spec)
    record, _ = start_run(
        gateway, spec, body, mode="sync", priority=spec.priority, key_name=key_name()
    )
    if wants_event_stream():
        # The run's events on this request, ending with the answer; a client that
        # leaves cancels it when CANCEL_ON_DISCONNECT says so, as a held one would.
        cancel = gateway.settings.service.cancel_on_disconnect
        return None, event_stream(gateway, record.id, cancel_on_gone=cancel)
    final = hold(
        gateway,
        record,
        runs.timeout + _RECORD_GRACE if budget is None else budget,
        request.environ,
    )
    if final.status == SUCCESS:
        return spec, final
    if final.finished:
        raise RecordedError(final.error or {})
    if budget is None:
        raise GenerationTimeout(
            f"No result after {runs.timeout:g} s", run_id=final.id, prompt_id=final.prompt_id
        )
    position = gateway.runs.queue_position(final.id)
    headers = {"Location": f"/api/status/{final.id}", "Preference-Applied": f"wait={budget:g}"}
    return None, (record_body(final, position), 202, headers)


def _file_response(record: RunRecord):
    stored = record.files[0]["stored"]
    response = send_file(
        stored["local_path"], mimetype=stored["content_type"], conditional=False, etag=False
    )
    name = stored["key"].rsplit("/", 1)[-1]
    response.headers["Content-Disposition"] = content_disposition("attachment", name)
    response.headers["X-Prompt-Id"] = record.prompt_id or ""
    response.headers["X-Run-Id"] = record.id
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def answer_url(body: Any, files: dict[str, bytes]):
    """Run and answer with the result's JSON (or the file, with `response_type: file`)."""
    spec, final = _run(body, files)
    if spec is None:
        return final
    if spec.response_type == "file":
        return _file_response(final)
    return final.result


def answer_file(body: Any, files: dict[str, bytes]):
    """Run and answer with the first output's bytes."""
    spec, final = _run(body, files)
    return final if spec is None else _file_response(final)


@bp.post("/generate")
@operation(
    body=GenerateRequest,
    multipart=True,
    answers={200: GenerateResponse, 202: RunStatus},
    tag="generate",
)
def generate_url():
    """Run a workflow and answer with the URL of its first output (all in `images`).

    Holds the request until the run ends. `"wait"` (or `Prefer: wait=N`) caps
    the hold: a run still going then is answered 202 with its status.
    `Accept: text/event-stream` streams the run's events instead.
    """
    return answer_url(*read_body())


@bp.post("/generate_file")
@operation(
    body=GenerateRequest,
    multipart=True,
    answers={200: FILE, 202: RunStatus},
    tag="generate",
)
def generate_file():
    """Run a workflow and answer with the bytes of its first output."""
    return answer_file(*read_body())
