"""Tell what kind of image reference a string is, and decode the inline kinds."""

from __future__ import annotations

import base64
import binascii
import re
from enum import Enum

from comfysync.inputs.errors import BlockedAddress, NotAnImage, TooLarge
from comfysync.mounts import URL_WORDS

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_DATA_URL = re.compile(r"^data:([^,;]*)((?:;[^,;]*)*?)(;base64)?,", re.IGNORECASE)
# `alias:relative/name`: a file in an input mount. No `//` after the colon, so a URL
# (or a mistyped one) never reads as one; `data:` is matched before this.
_MOUNT_REF = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,63}):(?!//)(.+)$", re.DOTALL)
_BASE64 = re.compile(r"^[A-Za-z0-9+/_\-\s]+={0,2}\s*$")
# No ComfyUI input file name is this long; a longer base64-looking string is data.
_MAX_NAME_LENGTH = 255
_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"RIFF",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
)


class SourceKind(Enum):
    """How an image value is given."""

    URL = "url"  # http(s)://...
    OTHER_SCHEME = "other_scheme"  # file://, ftp://, gopher://...: never fetched
    DATA_URL = "data_url"
    BASE64 = "base64"
    MOUNT = "mount"  # alias:name, a file in one of INPUT_MOUNTS
    NAME = "name"  # a file already in ComfyUI's input folder


def classify(value: str) -> SourceKind:
    """Decide whether `value` is a URL, a data URL, a mount file, raw base64 or a plain name."""
    text = value.strip()
    scheme = _SCHEME.match(text)
    if scheme:
        is_http = scheme.group(1).lower() in ("http", "https")
        return SourceKind.URL if is_http else SourceKind.OTHER_SCHEME
    if text[:5].lower() == "data:":
        return SourceKind.DATA_URL
    if mount_reference(text) is not None:
        return SourceKind.MOUNT
    if _looks_like_base64(text):
        return SourceKind.BASE64
    return SourceKind.NAME


def mount_reference(value: str) -> tuple[str, str] | None:
    """`(alias, name)` when `value` is `alias:name` and the alias is not a URL scheme."""
    match = _MOUNT_REF.match(value.strip())
    if match is None or match.group(1).lower() in URL_WORDS:
        return None
    return match.group(1), match.group(2)


def is_inline_or_url(value: object) -> bool:
    """True for strings the gateway must fetch or decode (anything but a plain name)."""
    return isinstance(value, str) and classify(value) is not SourceKind.NAME


def decode_data_url(value: str, max_bytes: int) -> bytes:
    """Decode a `data:image/...;base64,` URL.

    :raises NotAnImage: when it is not a base64 image data URL.
    :raises TooLarge: when the decoded size would pass `max_bytes`.
    """
    match = _DATA_URL.match(value.strip())
    if not match or not match.group(3):
        raise NotAnImage("expected a data:image/...;base64, URL")
    media_type = match.group(1).strip().lower()
    if media_type and not media_type.startswith("image/"):
        raise NotAnImage(f"data URL has media type {media_type!r}, not image/*")
    return decode_base64(value.strip()[match.end() :], max_bytes)


def decode_base64(value: str, max_bytes: int) -> bytes:
    """Decode standard or URL-safe base64, padding optional.

    :raises NotAnImage: when it is not valid base64.
    :raises TooLarge: when the decoded size would pass `max_bytes`.
    """
    text = "".join(value.split())
    # Check before decoding so an oversized string never becomes a second large buffer.
    if len(text) // 4 * 3 > max_bytes + 3:
        raise TooLarge(f"over {_mib(max_bytes)}")
    text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise NotAnImage(f"invalid base64 ({err})") from err
    if len(data) > max_bytes:
        raise TooLarge(f"over {_mib(max_bytes)}")
    return data


def check_scheme(value: str) -> None:
    """Reject URLs whose scheme we never fetch.

    :raises BlockedAddress: for anything but http and https.
    """
    if classify(value) is SourceKind.OTHER_SCHEME:
        scheme = value.strip().split(":", 1)[0].lower()
        raise BlockedAddress(f"only http and https URLs are fetched, not {scheme}://")


def _looks_like_base64(text: str) -> bool:
    if len(text) < 8 or not _BASE64.match(text):
        return False
    if len(text) > _MAX_NAME_LENGTH:
        return True
    try:
        head = decode_base64(text[:64], 64)
    except (NotAnImage, TooLarge):
        return False
    return head.startswith(_MAGIC)


def _mib(size: int) -> str:
    return f"{size / (1 << 20):g} MiB"
