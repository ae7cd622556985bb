"""`POST /api/generate` (URL answer) and `POST /api/generate_file` (the bytes)."""

from __future__ import annotations

from flask import Blueprint, current_app, request, send_file

from ..generation import GenerationResult, GenerationSpec, generate
from .body import read_body

bp = Blueprint("generate", __name__)


def _run() -> tuple[GenerationSpec, GenerationResult]:
    gateway = current_app.extensions["comfysync"]
    spec = GenerationSpec.from_body(*read_body())
    return spec, generate(gateway, spec, request.environ)


def _file_response(result: GenerationResult):
    stored = result.stored[0]
    response = send_file(
        stored.local_path,
        mimetype=stored.content_type,
        as_attachment=True,
        download_name=stored.key.rsplit("/", 1)[-1],
        conditional=False,
        etag=False,
    )
    response.headers["X-Prompt-Id"] = result.prompt_id
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.post("/generate")
def generate_url():
    """Run a workflow and answer with the URL of its first output (all in `images`)."""
    spec, result = _run()
    if spec.response_type == "file":
        return _file_response(result)
    return result.to_dict()


@bp.post("/generate_file")
def generate_file():
    """Run a workflow and answer with the bytes of its first output."""
    return _file_response(_run()[1])
