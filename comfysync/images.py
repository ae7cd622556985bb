"""Image facts (media type, pixel size) from names, headers or files; never the network."""

from __future__ import annotations

import mimetypes
import struct

from PIL import Image, UnidentifiedImageError

# Outputs ComfyUI writes that mimetypes may not know on a slim system.
_EXTRA_TYPES = {
    ".webp": "image/webp",
    ".webm": "video/webm",
    ".mp4": "video/mp4",
    ".flac": "audio/flac",
    ".glb": "model/gltf-binary",
}


def content_type_for(filename: str) -> str:
    """Best guess of a file's media type from its name."""
    lowered = filename.lower()
    for ext, kind in _EXTRA_TYPES.items():
        if lowered.endswith(ext):
            return kind
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


# How much of a file `header_size` may need; JPEG's frame header can follow EXIF data.
HEAD_BYTES = 64 * 1024
# JPEG start-of-frame markers (C4, C8 and CC are other segments).
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def header_size(head: bytes) -> tuple[int, int] | None:
    """Pixel size from the first bytes of a PNG, GIF, WebP or JPEG; None if not found.

    The common outputs are sized without opening the file again through
    Pillow, which costs more than the rest of describing an output.
    """
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", head[6:10])
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_size(head)
        if head[:2] == b"\xff\xd8":
            return _jpeg_size(head)
    except struct.error:
        pass  # cut short: let Pillow look at the whole file
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(head[24:27], "little") + 1
        h = int.from_bytes(head[27:30], "little") + 1
        return w, h
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and head[20:21] == b"\x2f":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", head[at + 5 : at + 9])
            return w, h
        if marker in (0xD9, 0xDA):  # image end or scan start: no frame header before it
            return None
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        at += 2 + struct.unpack(">H", head[at + 2 : at + 4])[0]
    return None


def probe_size(path: str, head: bytes = b"") -> tuple[int, int] | None:
    """Pixel size of an image file from `head` (its first bytes) or else Pillow; None for others."""
    size = header_size(head) if head else None
    if size is not None:
        return size
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None
