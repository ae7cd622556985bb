"""CORS: which web pages (origins) may call the gateway from a browser.

Off unless `CORS_ORIGINS` lists origins (or `*`). A preflight (`OPTIONS`
with `Origin` and `Access-Control-Request-Method`) is answered here,
before the API-key check, because browsers never send credentials with
one; any other request still needs its key. Credentials (cookies) are
never allowed: keys travel as bearer tokens, which need none, and `*`
must never be combined with them anyway.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request

from .errors import GatewayError

ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOWED_HEADERS = (
    "authorization",
    "content-type",
    "idempotency-key",
    "last-event-id",
    "prefer",
    "x-request-id",
)
# Headers scripts in the page may read from our answers.
EXPOSED_HEADERS = (
    "Location, Retry-After, X-Request-Id, X-Run-Id, X-Prompt-Id, Content-Disposition, "
    "Idempotent-Replayed, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)
MAX_AGE = "600"


class OriginNotAllowed(GatewayError):
    """A browser preflight from a page whose origin is not in CORS_ORIGINS."""

    code = 403
    error_type = "origin_not_allowed"
    description = "This origin may not call the gateway (see CORS_ORIGINS)"


def _allowed(origin: str) -> str | None:
    """The Access-Control-Allow-Origin value for `origin`, or None."""
    origins: tuple[str, ...] = current_app.extensions["comfysync"].settings.service.cors_origins
    if "*" in origins:
        return "*"
    return origin if origin.rstrip("/").lower() in origins else None


def _preflight() -> Response | None:
    origin = request.headers.get("Origin")
    if request.method != "OPTIONS" or not origin:
        return None
    if "Access-Control-Request-Method" not in request.headers:
        return None
    allowed = _allowed(origin)
    if allowed is None:
        raise OriginNotAllowed(origin=origin)
    asked = request.headers.get("Access-Control-Request-Headers", "")
    headers = [h.strip().lower() for h in asked.split(",") if h.strip()]
    refused = [h for h in headers if h not in ALLOWED_HEADERS]
    if refused:
        raise OriginNotAllowed(f"Header(s) not allowed: {', '.join(refused)}", origin=origin)
    response = Response(status=204)
    response.headers["Access-Control-Allow-Origin"] = allowed
    response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    if headers:
        response.headers["Access-Control-Allow-Headers"] = ", ".join(headers)
    response.headers["Access-Control-Max-Age"] = MAX_AGE
    response.headers["Vary"] = "Origin"
    return response


def _decorate(response: Response) -> Response:
    origin = request.headers.get("Origin")
    if origin and "Access-Control-Allow-Origin" not in response.headers:
        allowed = _allowed(origin)
        if allowed is not None:
            response.headers["Access-Control-Allow-Origin"] = allowed
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    if origin and current_app.extensions["comfysync"].settings.service.cors_origins:
        response.vary.add("Origin")
    return response


def register(app: Flask) -> None:
    """Answer preflights before anything else runs and mark answers for allowed origins."""
    if not app.extensions["comfysync"].settings.service.cors_origins:
        return
    app.before_request(_preflight)
    app.after_request(_decorate)
