"""Output formats: ComfyUI's bytes untouched by default, or re-encoded, resized and stripped.

Pure functions from a stream (or bytes) to a stream (or bytes), with Pillow.
"""

from __future__ import annotations

import io
import logging
import shutil
from dataclasses import dataclass
from typing import Any, BinaryIO

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from .errors import ComfyBadResponse

log = logging.getLogger(__name__)

DEFAULT_QUALITY = 90
# name -> (content type, file extension, Pillow format)
FORMATS = {
    "png": ("image/png", ".png", "PNG"),
    "jpeg": ("image/jpeg", ".jpg", "JPEG"),
    "webp": ("image/webp", ".webp", "WEBP"),
}
FORMAT_ALIASES = {"jpg": "jpeg"}

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Where ComfyUI puts the prompt and workflow JSON (plus EXIF, for completeness).
_PNG_METADATA_CHUNKS = {b"tEXt", b"zTXt", b"iTXt", b"eXIf"}
# ComfyUI's own WebP convention: "prompt:<json>" in Model, the rest downwards from Make.
_EXIF_PROMPT_TAG, _EXIF_FIRST_EXTRA_TAG = 0x0110, 0x010F
# A JPEG APP1 segment holds at most 64 KiB, header included.
_JPEG_EXIF_LIMIT = 65533 - 8
_COPY_CHUNK = 64 * 1024


@dataclass(frozen=True)
class OutputOptions:
    """What a request asked for; the defaults leave ComfyUI's file untouched."""

    format: str | None = None  # None: as produced (re-encoded as PNG only when needed)
    quality: int = DEFAULT_QUALITY  # JPEG and WebP; PNG is lossless and ignores it
    max_width: int | None = None
    max_height: int | None = None
    strip_metadata: bool = False

    @property
    def resizes(self) -> bool:
        """Whether a size limit is set."""
        return self.max_width is not None or self.max_height is not None

    @property
    def untouched(self) -> bool:
        """Whether nothing at all was asked for."""
        return self.format is None and not self.resizes and not self.strip_metadata


@dataclass(frozen=True)
class Converted:
    """What came out: its content type, extension and whether bytes were copied as-is."""

    content_type: str
    extension: str
    passthrough: bool


# -- request bounds (checked by comfysync.models) --


# The largest side JPEG and PNG encoders take; beyond it a bound means nothing,
# and a huge one (1e308) overflowed the resize after the prompt had run.
MAX_DIMENSION = 65535


# -- conversion --


def content_type_of(head: bytes) -> tuple[str, str]:
    """The content type and extension that the first 12 bytes of a file announce."""
    if head.startswith(PNG_SIGNATURE):
        return FORMATS["png"][:2]
    if head.startswith(b"\xff\xd8\xff"):
        return FORMATS["jpeg"][:2]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return FORMATS["webp"][:2]
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif", ".gif"
    return "application/octet-stream", ".bin"


def transcode(source: BinaryIO, dest: BinaryIO, options: OutputOptions) -> Converted:
    """Write `source` to `dest` as `options` ask and describe the result.

    Untouched options copy the bytes as they are. A PNG kept as PNG at its size
    only loses its text chunks (`strip_metadata`) without being decoded.
    Anything else is decoded (first frame only) and encoded again.

    :raises ComfyBadResponse: when the source is not an image Pillow can read.
    """
    head = source.read(12)
    if options.untouched:
        dest.write(head)
        shutil.copyfileobj(source, dest, _COPY_CHUNK)
        return Converted(*content_type_of(head), passthrough=True)
    target = options.format or "png"
    if target == "png" and not options.resizes and head.startswith(PNG_SIGNATURE):
        dest.write(head[:8])
        _copy_png_chunks(_Prefixed(head[8:], source), dest, options.strip_metadata)
        return Converted(*FORMATS["png"][:2], passthrough=not options.strip_metadata)
    stream: BinaryIO
    if source.seekable():
        source.seek(-len(head), io.SEEK_CUR)
        stream = source
    else:
        stream = io.BytesIO(head + source.read())
    try:
        with Image.open(stream) as image:
            _encode(image, dest, target, options)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise ComfyBadResponse(f"cannot convert the image ComfyUI produced: {err}") from err
    return Converted(*FORMATS[target][:2], passthrough=False)


def transcode_bytes(data: bytes, options: OutputOptions) -> tuple[bytes, Converted]:
    """`transcode` for data already in memory.

    :raises ComfyBadResponse: when the data is not an image Pillow can read.
    """
    out = io.BytesIO()
    converted = transcode(io.BytesIO(data), out, options)
    return out.getvalue(), converted


def _encode(image: Image.Image, dest: BinaryIO, target: str, options: OutputOptions) -> None:
    """Resize, convert the mode for `target`, and save with or without metadata."""
    icc_profile = image.info.get("icc_profile")  # colour, not metadata: always kept
    if options.resizes:
        box = (options.max_width or image.width, options.max_height or image.height)
        # thumbnail keeps the aspect ratio and never upscales; reducing_gap lets it
        # shrink by whole factors first (and a JPEG decode at a lower scale via
        # draft), so a large image is never resampled at full size with LANCZOS.
        image.thumbnail(box, Image.Resampling.LANCZOS, reducing_gap=3.0)
    else:
        image.load()
    text = {} if options.strip_metadata else {k: str(v) for k, v in _text_of(image).items()}
    exif = None if options.strip_metadata else image.getexif()
    image = _convert_mode(image, target)
    save: dict[str, Any] = {}
    if icc_profile:
        save["icc_profile"] = icc_profile
    if target == "png":
        if text:
            info = PngImagePlugin.PngInfo()
            for key, value in text.items():
                info.add_text(key, value)
            save["pnginfo"] = info
        image.save(dest, "PNG", **save)
        return
    save["quality"] = options.quality
    exif_bytes = _exif_with_text(exif, text) if exif is not None else b""
    if target == "jpeg" and len(exif_bytes) > _JPEG_EXIF_LIMIT:
        log.info("metadata (%d bytes) does not fit in JPEG EXIF; dropped", len(exif_bytes))
        exif_bytes = b""
    if exif_bytes:
        save["exif"] = exif_bytes
    image.save(dest, FORMATS[target][2], **save)


def _text_of(image: Image.Image) -> dict[str, Any]:
    """PNG text chunks (prompt, workflow...), read after the image data too."""
    return dict(getattr(image, "text", None) or {})


def _exif_with_text(exif: Image.Exif, text: dict[str, str]) -> bytes:
    """The source EXIF plus the PNG text chunks, stored as ComfyUI stores them in WebP."""
    tag = _EXIF_FIRST_EXTRA_TAG
    for key, value in text.items():
        if key == "prompt":
            exif[_EXIF_PROMPT_TAG] = f"prompt:{value}"
        else:
            exif[tag] = f"{key}:{value}"
            tag -= 1
    return exif.tobytes() if len(exif) else b""


def _convert_mode(image: Image.Image, target: str) -> Image.Image:
    """A mode `target` can store; transparency over white where JPEG has no alpha."""
    if target == "png":
        return image
    if target == "webp":
        if image.mode in ("RGB", "RGBA"):
            return image
        return image.convert("RGBA" if image.has_transparency_data else "RGB")
    if image.mode in ("RGB", "L", "CMYK"):
        return image
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def _copy_png_chunks(source: _Prefixed, dest: BinaryIO, strip_metadata: bool) -> None:
    """Copy PNG chunks after the signature, dropping text and EXIF chunks if asked."""
    while True:
        header = source.read_exactly(8)
        if not header:
            return
        length, kind = int.from_bytes(header[:4], "big"), header[4:8]
        keep = not (strip_metadata and kind in _PNG_METADATA_CHUNKS)
        if keep:
            dest.write(header)
        remaining = length + 4  # the data and its CRC
        while remaining:
            block = source.read_exactly(min(remaining, _COPY_CHUNK))
            if not block:
                raise ComfyBadResponse("the PNG ComfyUI produced is truncated")
            if keep:
                dest.write(block)
            remaining -= len(block)
        if kind == b"IEND":
            return


class _Prefixed:
    """A stream with some bytes already read from its start put back in front."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self.prefix = prefix
        self.stream = stream

    def read_exactly(self, size: int) -> bytes:
        """`size` bytes, b"" at a clean end; a short read mid-chunk is an error."""
        data = self.prefix[:size]
        self.prefix = self.prefix[size:]
        while len(data) < size:
            more = self.stream.read(size - len(data))
            if not more:
                break
            data += more
        if data and len(data) < size:
            raise ComfyBadResponse("the PNG ComfyUI produced is truncated")
        return data
