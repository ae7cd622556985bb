"""Per-field input errors: collected, then answered as one 400 that lists them all."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from comfysync.errors import BadRequest

_GOT_LIMIT = 120


@dataclass(frozen=True)
class FieldError:
    """What was wrong with one named input: the `fields` entries of the 400 body."""

    name: str
    expected: str
    got: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """The JSON form sent to the client."""
        return asdict(self)


class InvalidInputs(BadRequest):
    """One or more request inputs failed conversion, validation or image preparation."""

    error_type = "invalid_inputs"
    description = "invalid inputs"

    def __init__(self, fields: list[FieldError]) -> None:
        self.fields = list(fields)
        first = self.fields[0].name if self.fields else None
        super().__init__("invalid inputs", field=first, fields=[f.to_dict() for f in self.fields])


class ImageInputError(Exception):
    """An image could not be used; `kind` is the stable first word(s) of the reason."""

    kind = "invalid image"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"{self.kind}: {detail}")

    @property
    def reason(self) -> str:
        """The `reason` text of the field error, e.g. 'too large: over 20 MiB'."""
        return str(self)


class BlockedAddress(ImageInputError):
    """The URL's scheme, host or resolved address is not allowed to be fetched."""

    kind = "blocked address"


class Unreachable(ImageInputError):
    """The URL could not be fetched: DNS, connection, timeout, HTTP status, redirects."""

    kind = "unreachable"


class TooLarge(ImageInputError):
    """The image is over the byte or pixel limit (including decompression bombs)."""

    kind = "too large"


class NotAnImage(ImageInputError):
    """The bytes are not a decodable image of an accepted format."""

    kind = "not an image"


class BlockedPath(ImageInputError):
    """`alias:name` whose alias is not an input mount, or whose path leads out of it."""

    kind = "blocked path"


class MissingFile(ImageInputError):
    """`alias:name` names no readable file in that input mount."""

    kind = "not found"


def describe(value: Any) -> str:
    """A short, safe description of a received value for the `got` field."""
    if isinstance(value, bytes | bytearray):
        return f"file ({len(value)} bytes)"
    if isinstance(value, str):
        if value.startswith("data:"):
            return f"data URL ({len(value)} characters)"
        if len(value) > _GOT_LIMIT:
            return f"{value[: _GOT_LIMIT - 3]}... ({len(value)} characters)"
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return type(value).__name__
