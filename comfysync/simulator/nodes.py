"""Pillow implementations of the ComfyUI nodes the simulator runs for real."""

from __future__ import annotations

import hashlib
import json
import os
import random
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image, ImageFilter, ImageOps

from .imaging import ImageBatch, MaskBatch, png_bytes, png_metadata
from .storage import DataDirs


class SimNodeError(Exception):
    """A node failure reported with a chosen exception type name (e.g. 'IndexError')."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name


@dataclass
class NodeResult:
    """What a node returns: its output slots and optional UI output."""

    outputs: tuple[Any, ...] = ()
    ui: dict[str, Any] | None = None


class NodeContext(Protocol):
    """Services the executor offers to a running node."""

    node_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    dirs: DataDirs
    version: str
    instance: dict[str, Any]
    delay: float
    previews: bool

    async def progress(self, value: int | float, total: int | float, preview: Any = None) -> None:
        """Report progress (and an optional ('PNG'|'JPEG', image) preview)."""

    async def send_text(self, text: str) -> None:
        """Send a binary TEXT frame for this node to every socket."""

    async def blocking(self, fn: Callable[..., Any], *args: Any, pixels: int = 0) -> Any:
        """Run image work, in a thread when `pixels` is large."""


NodeFn = Callable[..., "NodeResult | Awaitable[NodeResult]"]


@dataclass
class NodeImpl:
    """A runnable node: its function and an optional IS_CHANGED hook."""

    fn: NodeFn
    is_changed: Callable[[DataDirs, dict[str, Any]], Any] | None = None
    has_intermediate_output: bool = False
    # A paced node sleeps its configured delay itself (e.g. spread over sampler steps).
    paced: bool = False
    hidden: tuple[str, ...] = field(default_factory=tuple)


def _rgb(color: int) -> tuple[int, int, int]:
    return ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)


def empty_image(ctx: NodeContext, width: int, height: int, batch_size: int = 1, color: int = 0):
    img = Image.new("RGB", (width, height), _rgb(color))
    return NodeResult((ImageBatch(tuple([img] * batch_size)),))


def _map_frames(batch: ImageBatch, fn: Callable[[Image.Image], Image.Image]) -> ImageBatch:
    return ImageBatch(tuple(fn(f) for f in batch.frames))


_INVERTED = [255 - x for x in range(256)]


def _invert(frame: Image.Image) -> Image.Image:
    # A ready table per band: Pillow would otherwise call a lambda 256 times per band.
    return frame.point(_INVERTED * len(frame.getbands()))


async def image_invert(ctx: NodeContext, image: ImageBatch):
    out = await ctx.blocking(_map_frames, image, _invert, pixels=image.pixels)
    return NodeResult((out,))


async def image_blur(ctx: NodeContext, image: ImageBatch, blur_radius: int, sigma: float):
    if blur_radius == 0:
        return NodeResult((image,))
    filt = ImageFilter.GaussianBlur(radius=min(float(sigma), float(blur_radius)))
    out = await ctx.blocking(_map_frames, image, lambda f: f.filter(filt), pixels=image.pixels)
    return NodeResult((out,))


_RESAMPLE = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "bislerp": Image.Resampling.BILINEAR,
}


def _scale(frame: Image.Image, width: int, height: int, method: str, crop: str) -> Image.Image:
    if crop == "center":
        fw, fh = frame.size
        old, new = fw / fh, width / height
        if old > new:
            cut = round((fw - fw * (new / old)) / 2)
            frame = frame.crop((cut, 0, fw - cut, fh))
        elif old < new:
            cut = round((fh - fh * (old / new)) / 2)
            frame = frame.crop((0, cut, fw, fh - cut))
    return frame.resize((width, height), _RESAMPLE.get(method, Image.Resampling.BILINEAR))


async def image_scale(
    ctx: NodeContext, image: ImageBatch, upscale_method: str, width: int, height: int, crop: str
):
    if width == 0 and height == 0:
        return NodeResult((image,))
    w0, h0 = image.size
    if width == 0:
        width = max(1, round(w0 * height / h0))
    elif height == 0:
        height = max(1, round(h0 * width / w0))
    out = await ctx.blocking(
        _map_frames,
        image,
        lambda f: _scale(f, width, height, upscale_method, crop),
        pixels=max(image.pixels, width * height * len(image.frames)),
    )
    return NodeResult((out,))


def load_image(ctx: NodeContext, image: str):
    path = ctx.dirs.annotated_input(image)
    if not os.path.isfile(path):
        from .config import version_data

        raise SimNodeError(
            version_data(ctx.version)["load_image_missing_type"],
            f"[Errno 2] No such file or directory: '{path}'",
        )
    with Image.open(path) as opened:
        src = ImageOps.exif_transpose(opened)
        has_alpha = "A" in src.getbands() or "transparency" in src.info
        rgba = src.convert("RGBA")
    rgb = rgba.convert("RGB")
    if has_alpha:
        # ComfyUI's mask is 1 - alpha.
        mask = rgba.getchannel("A").point(lambda a: 255 - a)
    else:
        mask = Image.new("L", (64, 64), 0)
    return NodeResult((ImageBatch((rgb,)), MaskBatch((mask,))))


def load_image_changed(dirs: DataDirs, inputs: dict[str, Any]) -> Any:
    path = dirs.annotated_input(str(inputs.get("image", "")))
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return float("nan")


def _save_frames(
    frames: tuple[Image.Image, ...],
    folder: str,
    name: str,
    first: int,
    text: dict[str, str],
    level: int,
) -> list[str]:
    files = []
    for i, frame in enumerate(frames):
        fname = f"{name}_{first + i:05}_.png"
        with open(os.path.join(folder, fname), "wb") as fh:
            fh.write(png_bytes(frame, level, text))
        files.append(fname)
    return files


async def _write_images(
    ctx: NodeContext,
    images: ImageBatch,
    base: str,
    prefix: str,
    kind: str,
    level: int,
    with_meta: bool,
) -> list[dict[str, str]]:
    folder, subfolder, name, first = ctx.dirs.reserve(base, prefix, len(images.frames))
    text = {}
    if with_meta:
        text = png_metadata(ctx.prompt, ctx.extra_data.get("extra_pnginfo"))
    files = await ctx.blocking(
        _save_frames, images.frames, folder, name, first, text, level, pixels=images.pixels * 4
    )
    return [{"filename": f, "subfolder": subfolder, "type": kind} for f in files]


async def save_image(ctx: NodeContext, images: ImageBatch, filename_prefix: str = "ComfyUI"):
    results = await _write_images(ctx, images, ctx.dirs.output, filename_prefix, "output", 4, True)
    return NodeResult((images,), {"images": results})


def _temp_prefix(ctx: NodeContext) -> str:
    # Each node instance draws its five letters once; ComfyUI keeps instances per node id.
    if "temp_prefix" not in ctx.instance:
        letters = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
        ctx.instance["temp_prefix"] = "ComfyUI_temp_" + letters
    return ctx.instance["temp_prefix"]


async def preview_image(ctx: NodeContext, images: ImageBatch):
    results = await _write_images(ctx, images, ctx.dirs.temp, _temp_prefix(ctx), "temp", 1, True)
    return NodeResult((images,), {"images": results})


async def save_image_websocket(ctx: NodeContext, images: ImageBatch):
    total = len(images.frames)
    for step, frame in enumerate(images.frames):
        await ctx.progress(step, total, ("PNG", frame))
    return NodeResult(())


def image_to_mask(ctx: NodeContext, image: ImageBatch, channel: str):
    index = ["red", "green", "blue", "alpha"].index(channel)
    if index >= image.channels:
        raise SimNodeError(
            "IndexError",
            f"index {index} is out of bounds for dimension 3 with size {image.channels}",
        )
    return NodeResult((MaskBatch(tuple(f.getchannel(index) for f in image.frames)),))


def mask_to_image(ctx: NodeContext, mask: MaskBatch):
    return NodeResult((ImageBatch(tuple(f.convert("RGB") for f in mask.frames)),))


def primitive_string(ctx: NodeContext, value: str):
    return NodeResult((value,))


def string_concatenate(ctx: NodeContext, string_a: str, string_b: str, delimiter: str = ""):
    return NodeResult((delimiter.join((string_a, string_b)),))


def string_length(ctx: NodeContext, string: str):
    return NodeResult((len(string),))


def _preview_text(source: Any) -> str:
    if isinstance(source, str):
        return source
    if isinstance(source, (int, float, bool)):
        return str(source)
    if source is None:
        return "None"
    try:
        return json.dumps(source)
    except (TypeError, ValueError):
        return str(source)


def preview_any(ctx: NodeContext, source: Any = None):
    text = _preview_text(source)
    return NodeResult((text,), {"text": [text]})


async def get_image_size(ctx: NodeContext, image: ImageBatch):
    width, height = image.size
    batch = len(image.frames)
    await ctx.send_text(f"width: {width}, height: {height}\n batch size: {batch}")
    return NodeResult((width, height, batch))


async def image_crop_v2(ctx: NodeContext, image: ImageBatch, crop_region: dict[str, Any]):
    w0, h0 = image.size
    x = min(int(crop_region.get("x", 0)), w0 - 1)
    y = min(int(crop_region.get("y", 0)), h0 - 1)
    right = min(x + int(crop_region.get("width", 512)), w0)
    bottom = min(y + int(crop_region.get("height", 512)), h0)
    out = _map_frames(image, lambda f: f.crop((x, y, right, bottom)))
    results = await _write_images(ctx, out, ctx.dirs.temp, _temp_prefix(ctx), "temp", 1, True)
    return NodeResult((out,), {"images": results, "animated": [False]})


def always_changed(dirs: DataDirs, inputs: dict[str, Any]) -> Any:
    return time.time()


def registry() -> dict[str, NodeImpl]:
    """Node class name -> implementation (object_info decides which exist per version)."""
    from .model_nodes import MODEL_NODES

    nodes = {
        "EmptyImage": NodeImpl(empty_image),
        "ImageInvert": NodeImpl(image_invert),
        "ImageBlur": NodeImpl(image_blur),
        "ImageScale": NodeImpl(image_scale),
        "LoadImage": NodeImpl(load_image, is_changed=load_image_changed),
        "SaveImage": NodeImpl(save_image, hidden=("prompt", "extra_pnginfo")),
        "PreviewImage": NodeImpl(preview_image, hidden=("prompt", "extra_pnginfo")),
        "SaveImageWebsocket": NodeImpl(save_image_websocket, is_changed=always_changed),
        "ImageToMask": NodeImpl(image_to_mask),
        "MaskToImage": NodeImpl(mask_to_image),
        "PrimitiveString": NodeImpl(primitive_string),
        "StringConcatenate": NodeImpl(string_concatenate),
        "StringLength": NodeImpl(string_length),
        "PreviewAny": NodeImpl(preview_any),
        "GetImageSize": NodeImpl(get_image_size, hidden=("unique_id",)),
        "ImageCropV2": NodeImpl(image_crop_v2, has_intermediate_output=True),
    }
    nodes.update(MODEL_NODES)
    return nodes
