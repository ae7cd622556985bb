"""Reading a request body: JSON, or multipart with JSON in a `payload` part plus files."""

from __future__ import annotations

import io
import json
from typing import Any

import gevent
from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout

from ..errors import BadRequest

_READ_STEP = 1 << 16
_RECEIVED = "comfysync.body"  # environ key of the body once read


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# Workflows nest five levels deep, bodies around them two more: this is room
# to spare, and keeps every recursive walk of a body (ours, json's, orjson's
# 255 levels) far from Python's recursion limit.
MAX_DEPTH = 64


def _loads(raw: str | bytes) -> Any:
    try:
        # NaN and Infinity are not JSON (RFC 8259); Python's reader takes them.
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    _check_depth(value)
    return value


def _check_depth(value: Any) -> None:
    """Refuse arrays and objects nested deeper than MAX_DEPTH (without recursing)."""
    pending = [(value, 1)] if isinstance(value, dict | list) else []
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                if depth >= MAX_DEPTH:
                    raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
                pending.append((child, depth + 1))


def read_body() -> tuple[Any, dict[str, bytes]]:
    """The JSON body (None when empty) and any uploaded files by field name.

    :raises BadRequest: when the body is not valid JSON.
    """
    data = receive_body()
    if request.mimetype == "multipart/form-data":
        raw = request.form.get("payload", "")
        try:
            body = _loads(raw) if raw else {}
        except ValueError as err:
            raise BadRequest(f"The 'payload' part is not valid JSON: {err}") from err
        files = {name: upload.read() for name, upload in request.files.items()}
        return body, files
    if not data:
        return None, {}
    try:
        return _loads(data), {}
    except ValueError as err:
        raise BadRequest(f"The request body is not valid JSON: {err}") from err


class _BodyTimedOut(Exception):
    """BODY_TIMEOUT passed while reading. An Exception, not gevent's Timeout (a
    BaseException): the server then marks the connection unusable and closes it."""


def receive_body() -> bytes:
    """Read the whole request body once, within MAX_CONTENT_LENGTH and BODY_TIMEOUT.

    Werkzeug then parses it from memory. A chunked body (no Content-Length)
    past the limit used to be cut there silently and fail as bad JSON.

    :raises RequestEntityTooLarge: more than MAX_CONTENT_LENGTH bytes (413).
    :raises RequestTimeout: not all there within BODY_TIMEOUT seconds (408).
    :raises BadRequest: a malformed chunked encoding, or a body cut short.
    """
    environ = request.environ
    received = environ.get(_RECEIVED)
    if received is not None:
        return received
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    declared = request.content_length
    if declared is not None and declared > limit:
        raise RequestEntityTooLarge()
    stream = environ["wsgi.input"]
    wanted = declared if declared is not None else limit + 1
    chunks: list[bytes] = []
    size = 0
    timeout = current_app.extensions["comfysync"].settings.service.body_timeout
    try:
        with gevent.Timeout(timeout, _BodyTimedOut):
            while size < wanted:
                chunk = stream.read(min(_READ_STEP, wanted - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except _BodyTimedOut:
        raise RequestTimeout(f"The request body did not arrive within {timeout:g} s") from None
    except Exception as err:  # noqa: BLE001 - whatever the server's body reader raises
        raise BadRequest(
            f"The request body could not be read ({type(err).__name__}): check its chunked encoding"
        ) from None
    if size > limit:
        # The rest of an endless chunked body must not be drained: a server that
        # marks the body failed (gunicorn) closes the connection instead.
        if hasattr(stream, "failed"):
            stream.failed = True
        raise RequestEntityTooLarge()
    if declared is not None and size < declared:
        raise BadRequest(f"The request body ended after {size} of {declared} bytes")
    data = b"".join(chunks)
    environ[_RECEIVED] = data
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(size)
    return data
