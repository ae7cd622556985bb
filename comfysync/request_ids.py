"""Request ids: one per request, kept from `X-Request-Id` when a proxy set one, echoed back."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

HEADER = "X-Request-Id"
# What a proxy's id looks like (uuids, hex, dotted or dashed tokens); anything
# else is replaced, so a client cannot write arbitrary text into our logs.
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def current() -> str | None:
    """This request's id; None outside a request."""
    return g.get("request_id")


def _assign() -> None:
    incoming = request.headers.get(HEADER, "")
    g.request_id = incoming if _VALID.fullmatch(incoming) else uuid.uuid4().hex


def _echo(response: Response) -> Response:
    request_id = current()
    if request_id is not None:
        response.headers[HEADER] = request_id
    return response


def register(app: Flask) -> None:
    """Give every request an id before anything else runs, and answer with it."""
    app.before_request_funcs.setdefault(None, []).insert(0, _assign)
    app.after_request(_echo)
