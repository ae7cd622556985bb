"""Every error the gateway can answer with, and the one place that renders them."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from . import request_ids

log = logging.getLogger(__name__)


class GatewayError(Exception):
    """Base class: `code` is the HTTP status, `error_type` a stable machine name."""

    code = 500
    error_type = "internal_error"
    description = "Internal error"

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or self.description
        self.extra = extra
        self.headers: dict[str, str] = {}  # sent with the answer, e.g. Retry-After
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body sent to the client."""
        body: dict[str, Any] = {
            "status": "error",
            "error": self.message,
            "error_type": self.error_type,
            "status_code": self.code,
        }
        body.update(self.extra)
        return body


class BadRequest(GatewayError):
    """The request body or a parameter is malformed or inconsistent."""

    code = 400
    error_type = "bad_request"
    description = "Bad request"


class Unauthorized(GatewayError):
    """API keys are configured and the request carries none of them."""

    code = 401
    error_type = "unauthorized"
    description = "A valid API key is required: send 'Authorization: Bearer <key>'"


class Forbidden(GatewayError):
    """The key is valid but may not do this (its scopes or workflows)."""

    code = 403
    error_type = "forbidden"
    description = "This key may not do that"


class RateLimited(GatewayError):
    """Too many requests from one key (or address) in the current window."""

    code = 429
    error_type = "rate_limited"
    description = "Too many requests; retry after the time in Retry-After"


class NotFound(GatewayError):
    """A named workflow, prompt or file does not exist."""

    code = 404
    error_type = "not_found"
    description = "Not found"


class Conflict(GatewayError):
    """The request does not fit the resource's current state (a run not ended yet)."""

    code = 409
    error_type = "conflict"
    description = "Conflict with the current state"


class Interrupted(GatewayError):
    """ComfyUI interrupted the prompt (someone cancelled it) before it finished."""

    code = 409
    error_type = "interrupted"
    description = "The generation was interrupted in ComfyUI"


class NoOutput(GatewayError):
    """The prompt ran but produced no file for the requested output node."""

    code = 422
    error_type = "no_output"
    description = "ComfyUI finished the prompt but produced no output image"


class ComfyValidationError(GatewayError):
    """ComfyUI refused the graph at `POST /prompt`; its `node_errors` are passed on."""

    code = 400
    error_type = "comfyui_validation_error"
    description = "ComfyUI rejected the workflow"


class ExecutionFailed(GatewayError):
    """A node raised while ComfyUI executed the prompt."""

    code = 422
    error_type = "execution_error"
    description = "ComfyUI failed while executing the workflow"


class ComfyBadResponse(GatewayError):
    """ComfyUI answered, but with something we cannot use (5xx, not JSON, ...)."""

    code = 502
    error_type = "comfyui_bad_response"
    description = "ComfyUI returned an unexpected response"


class PromptLost(GatewayError):
    """The prompt is in neither ComfyUI's queue nor its history (ComfyUI restarted)."""

    code = 502
    error_type = "prompt_lost"
    description = "ComfyUI lost the prompt (it was probably restarted)"


class ComfyUnavailable(GatewayError):
    """ComfyUI cannot be reached at all."""

    code = 503
    error_type = "comfyui_unavailable"
    description = "ComfyUI is unreachable"


class AnswerLost(ComfyUnavailable):
    """ComfyUI took a request, but the connection broke before its whole answer arrived.

    For a read, asking again is safe; for `POST /prompt`, ComfyUI may hold
    the prompt already, so its queue and history are asked first.
    """


class ServerDown(ComfyUnavailable):
    """The ComfyUI server of an attempt went down; the run is tried on another server."""

    error_type = "comfyui_server_down"
    description = "The ComfyUI server running this prompt went down"


class ShuttingDown(GatewayError):
    """The gateway is stopping; the prompt keeps running in ComfyUI."""

    code = 503
    error_type = "shutting_down"
    description = "The gateway is shutting down; fetch the result later by prompt_id"


class GenerationTimeout(GatewayError):
    """The wait passed GENERATION_TIMEOUT; the prompt may still finish later."""

    code = 504
    error_type = "timeout"
    description = "The generation did not finish in time"


class StorageError(GatewayError):
    """Writing an output to storage failed."""

    code = 500
    error_type = "storage_error"
    description = "Could not store the generated output"


def register_error_handlers(app: Flask) -> None:
    """Render our errors and werkzeug's as the same JSON body, with real status codes."""

    @app.errorhandler(GatewayError)
    def handle_gateway_error(err: GatewayError):
        if err.code >= 500 or err.code == 403:
            log.warning(
                "%s: %s %s (%s %s, key %s)",
                err.error_type,
                err.message,
                err.extra or "",
                request.method,
                request.path,
                _key_name(),
            )
        return jsonify(err.to_dict()), err.code, err.headers

    @app.errorhandler(HTTPException)
    def handle_http_exception(err: HTTPException):
        code = err.code or 500
        name = (err.name or "error").lower().replace(" ", "_")
        body = {
            "status": "error",
            "error": err.description or err.name,
            "error_type": name,
            "status_code": code,
        }
        response = jsonify(body)
        response.status_code = code
        for key, value in err.get_headers():
            if key.lower() not in ("content-type", "content-length"):
                response.headers[key] = value
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(err: Exception):
        # A bug: logged with what finds the request again, answered as JSON.
        request_id = request_ids.current()
        log.exception(
            "unhandled error in %s %s (request %s, key %s)",
            request.method,
            request.path,
            request_id,
            _key_name(),
        )
        return jsonify(GatewayError().to_dict() | {"request_id": request_id}), 500


class ClientGone(GatewayError):
    """The client closed its connection while waiting; nobody reads this answer."""

    code = 499
    error_type = "client_closed_request"
    description = "The client closed the connection"


def _key_name() -> str:
    """The name of the request's API key, for the log ("-" when keys are off or none matched)."""
    key = g.get("api_key")
    return key.name if key is not None else "-"
