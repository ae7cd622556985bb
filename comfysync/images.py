"""Pillow helpers that work on bytes or files and never touch the network."""

from __future__ import annotations

import mimetypes

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


def probe_size(path: str) -> tuple[int, int] | None:
    """Pixel size of an image file, reading only its header; None for other files."""
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None
