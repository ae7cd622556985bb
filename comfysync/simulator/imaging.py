"""Image/mask values passed between simulated nodes, plus PNG/preview encoding."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from PIL import Image, PngImagePlugin

from .tensor_repr import tensor_repr


@dataclass(frozen=True, eq=False)
class ImageBatch:
    """An IMAGE value: a batch of equally sized RGB or RGBA Pillow images."""

    frames: tuple[Image.Image, ...]

    @property
    def channels(self) -> int:
        return 4 if self.frames[0].mode == "RGBA" else 3

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size

    @property
    def pixels(self) -> int:
        w, h = self.size
        return w * h * len(self.frames)

    def __str__(self) -> str:
        # ComfyUI shows IMAGE inputs of a failed node as str(tensor) of shape [B, H, W, C].
        w, h = self.size
        frames = self.frames
        return tensor_repr(
            (len(frames), h, w, self.channels),
            lambda i: frames[i[0]].getpixel((i[2], i[1]))[i[3]] / 255.0,  # type: ignore[index]
        )


@dataclass(frozen=True, eq=False)
class MaskBatch:
    """A MASK value: a batch of single-channel ('L') Pillow images, 255 = 1.0."""

    frames: tuple[Image.Image, ...]

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size

    @property
    def pixels(self) -> int:
        w, h = self.size
        return w * h * len(self.frames)

    def __str__(self) -> str:
        w, h = self.size
        frames = self.frames
        return tensor_repr(
            (len(frames), h, w),
            lambda i: frames[i[0]].getpixel((i[2], i[1])) / 255.0,  # type: ignore[operator]
        )


def png_bytes(
    img: Image.Image, compress_level: int = 4, text: dict[str, str] | None = None
) -> bytes:
    """Encode a PNG, optionally with tEXt chunks (ComfyUI's prompt/workflow metadata)."""
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info, compress_level=compress_level)
    return buf.getvalue()


def png_metadata(prompt: Any, extra_pnginfo: Any) -> dict[str, str]:
    """tEXt chunks SaveImage writes: the API prompt and every extra_pnginfo key."""
    text: dict[str, str] = {}
    if prompt is not None:
        text["prompt"] = json.dumps(prompt)
    if isinstance(extra_pnginfo, dict):
        for key, value in extra_pnginfo.items():
            text[str(key)] = json.dumps(value)
    return text


def jpeg_bytes(img: Image.Image, quality: int = 95) -> bytes:
    """Encode a JPEG (used for sampler previews)."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
