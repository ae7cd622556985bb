"""Reading a request body: JSON, or multipart with JSON in a `payload` part plus files."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from ..errors import BadRequest


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
    if request.mimetype == "multipart/form-data":
        raw = request.form.get("payload", "")
        try:
            body = _loads(raw) if raw else {}
        except ValueError as err:
            raise BadRequest(f"The 'payload' part is not valid JSON: {err}") from err
        files = {name: upload.read() for name, upload in request.files.items()}
        return body, files
    if not request.get_data(cache=True):
        return None, {}
    try:
        return _loads(request.get_data(cache=True)), {}
    except ValueError as err:
        raise BadRequest(f"The request body is not valid JSON: {err}") from err


PRIORITY_LIMIT = 1_000_000


def read_priority(body: Any) -> int:
    """The run's `priority`: a whole number, higher first (default 0).

    :raises BadRequest: when it is not a whole number.
    """
    value = body.get("priority", 0) if isinstance(body, dict) else 0
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > PRIORITY_LIMIT:
        raise BadRequest(
            f"'priority' must be a whole number from -{PRIORITY_LIMIT} to {PRIORITY_LIMIT} "
            "(higher runs first)",
            field="priority",
        )
    return value
