"""Check that bytes really are an image we accept, before ComfyUI ever sees them."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from comfysync.inputs.errors import NotAnImage, TooLarge

# Only decoders for common web formats are tried: exotic ones widen the attack surface.
# (Multi-picture JPEGs from phones open through "JPEG" and report format "MPO".)
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_EXTENSIONS = {
    "PNG": ".png",
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "WEBP": ".webp",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tiff",
}


@dataclass(frozen=True)
class VerifiedImage:
    """Image bytes that passed every check, with what ComfyUI needs to store them."""

    data: bytes
    format: str
    extension: str
    width: int
    height: int
    mode: str


def verify_image(
    data: bytes, *, max_bytes: int, max_pixels: int, alpha: bool = False
) -> VerifiedImage:
    """Check format, size and pixel count, and fully decode `data` once.

    With `alpha`, the result is an RGBA PNG (opaque if the source had no alpha), so
    ComfyUI's LoadImage yields a mask from it.

    :raises TooLarge: over `max_bytes`, over `max_pixels` (all frames), or a bomb.
    :raises NotAnImage: unknown format, truncated or corrupt data.
    """
    if len(data) > max_bytes:
        raise TooLarge(f"{len(data)} bytes, over the limit of {max_bytes}")
    if not data:
        raise NotAnImage("empty file")
    try:
        with warnings.catch_warnings():
            # Pillow only warns below twice its own limit; treat that as a bomb too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
                width, height = image.size
                frames = getattr(image, "n_frames", 1)
                # Checked before decoding: the header alone tells how much memory it needs.
                if width * height * frames > max_pixels:
                    raise TooLarge(
                        f"{width}x{height} pixels x {frames} frame(s) is over the limit of "
                        f"{max_pixels} pixels"
                    )
                image.load()
                fmt = image.format or ""
                if alpha:
                    return _as_rgba_png(image, data, width, height)
                return VerifiedImage(data, fmt, _EXTENSIONS[fmt], width, height, image.mode)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise TooLarge(f"decompression bomb rejected ({err})") from err
    except UnidentifiedImageError as err:
        raise NotAnImage("not a PNG, JPEG, WebP, GIF, BMP or TIFF image") from err
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        # Pillow reports truncated and corrupt data with any of these.
        raise NotAnImage(f"corrupt or truncated image ({err})") from err


def _as_rgba_png(image: Image.Image, data: bytes, width: int, height: int) -> VerifiedImage:
    single_rgba_png = image.format == "PNG" and image.mode == "RGBA"
    if not (single_rgba_png and getattr(image, "n_frames", 1) == 1):
        buffer = io.BytesIO()
        image.convert("RGBA").save(buffer, format="PNG")
        data = buffer.getvalue()
    return VerifiedImage(data, "PNG", ".png", width, height, "RGBA")
