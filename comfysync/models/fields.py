"""Field types shared by the request models: each refuses a bad value with the
sentence clients have always been sent for that field.

A validator raises `refuse(...)`; pydantic collects every field's refusal, and
`parse` turns them into one 400 body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticCustomError

from ..errors import BadRequest

ERROR_TYPE = "comfysync_refusal"


@dataclass(frozen=True)
class Refusal:
    """`Annotated` metadata: the sentence for any value of this field pydantic refuses.

    `{input!r}` in it is replaced by what the client sent.
    """

    text: str


def refuse(message: str, field: str | None = None) -> PydanticCustomError:
    """The error a validator raises: `message` as is, `field` when it is deeper than the key."""
    return PydanticCustomError(ERROR_TYPE, "{message}", {"message": message, "field": field})


def checked_by(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A validator from one of the gateway's own checks that raise BadRequest."""

    def validate(value: Any) -> Any:
        try:
            return check(value)
        except BadRequest as err:
            raise refuse(err.message, err.extra.get("field")) from None

    return validate


def whole_number(name: str, expected: str, low: int, high: int) -> Callable[[Any], int | None]:
    """A whole number within [low, high]: JSON numbers, or digits in a string (form posts).

    None or "" mean "not set".
    """

    def validate(raw: Any) -> int | None:
        if raw is None or raw == "":
            return None
        value: int | None = None
        if isinstance(raw, bool):
            value = None  # JSON true is not a number, whatever Python thinks
        elif isinstance(raw, int):
            value = raw
        elif isinstance(raw, float) and raw.is_integer():
            value = int(raw)
        elif isinstance(raw, str) and raw.strip().isascii():
            try:
                value = int(raw.strip())
            except ValueError:
                value = None
        if value is None or not low <= value <= high:
            raise refuse(f"{name} must be a whole number {expected} (got {raw!r})")
        return value

    return validate
