"""Output formats: every format, quality and size limit, checked by decoding the result."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image, PngImagePlugin

from comfysync.errors import BadRequest, ComfyBadResponse
from comfysync.models import OutputRequest, parse
from comfysync.transcode import OutputOptions, transcode, transcode_bytes

PROMPT = '{"3": {"class_type": "KSampler"}}'
WORKFLOW = '{"nodes": [], "links": []}'
PIL_FORMAT = {None: "PNG", "png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def encode(image: Image.Image, fmt: str = "PNG", text: dict[str, str] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    out = io.BytesIO()
    image.save(out, fmt, **({"pnginfo": info} if fmt == "PNG" else {}))
    return out.getvalue()


def noisy(size: tuple[int, int] = (200, 100), mode: str = "RGB") -> Image.Image:
    """Random pixels, so lossy quality visibly changes the file size."""
    rng = random.Random(7)
    data = bytes(rng.randrange(256) for _ in range(size[0] * size[1] * len(mode)))
    return Image.frombytes(mode, size, data)


@pytest.fixture(scope="module")
def comfy_png() -> bytes:
    """A 200x100 PNG with ComfyUI's prompt and workflow text chunks."""
    return encode(noisy(), text={"prompt": PROMPT, "workflow": WORKFLOW})


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# -- validation --


def parse_output_options(params: dict) -> OutputOptions:
    return parse(OutputRequest, params).output_options()


def test_defaults_leave_the_file_untouched() -> None:
    options = parse_output_options({})
    assert options == OutputOptions()
    assert options.untouched


def test_valid_fields_are_normalised() -> None:
    options = parse_output_options(
        {
            "output_format": " JPG ",
            "quality": "75",
            "max_width": 512.0,
            "max_height": "256",
            "strip_metadata": "true",
        }
    )
    assert options == OutputOptions("jpeg", 75, 512, 256, True)


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"output_format": "gif"}, "output_format", "png, jpeg, webp"),
        ({"output_format": 3}, "output_format", "png, jpeg, webp"),
        ({"quality": 0}, "quality", "from 1 to 100"),
        ({"quality": 101}, "quality", "from 1 to 100"),
        ({"quality": "high"}, "quality", "from 1 to 100"),
        ({"quality": True}, "quality", "from 1 to 100"),
        ({"quality": 80.5}, "quality", "from 1 to 100"),
        ({"max_width": 0}, "max_width", "from 1 to 65535"),
        ({"max_width": -10}, "max_width", "from 1 to 65535"),
        ({"max_height": "--5"}, "max_height", "from 1 to 65535"),
        ({"max_width": 1e308}, "max_width", "from 1 to 65535"),
        ({"max_height": 10**400}, "max_height", "from 1 to 65535"),
        ({"max_width": "9" * 5000}, "max_width", "from 1 to 65535"),
        ({"max_width": "²"}, "max_width", "from 1 to 65535"),
        ({"strip_metadata": "perhaps"}, "strip_metadata", "true or false"),
    ],
)
def test_invalid_fields_are_bad_requests(params, field, words) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_output_options(params)
    assert caught.value.code == 400
    assert field in caught.value.message and words in caught.value.message
    assert caught.value.to_dict()["field"] == field


# -- every format, quality and size --

SIZES = [
    (None, None, (200, 100)),
    (50, None, (50, 25)),
    (None, 40, (80, 40)),
    (60, 60, (60, 30)),
    (1000, 1000, (200, 100)),  # never upscaled
]


@pytest.mark.parametrize("fmt", [None, "png", "jpeg", "webp"])
@pytest.mark.parametrize("quality", [1, 50, 100])
@pytest.mark.parametrize(("max_width", "max_height", "expected_size"), SIZES)
def test_every_combination_decodes_as_asked(
    comfy_png, fmt, quality, max_width, max_height, expected_size
) -> None:
    options = OutputOptions(fmt, quality, max_width, max_height)

    data, converted = transcode_bytes(comfy_png, options)

    image = decode(data)
    assert image.format == PIL_FORMAT[fmt]
    assert image.size == expected_size
    assert converted.content_type == f"image/{PIL_FORMAT[fmt].lower()}"
    assert converted.extension == {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}[image.format]
    if fmt in (None, "png") and max_width is None and max_height is None:
        assert data == comfy_png and converted.passthrough


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_quality_changes_lossy_output(comfy_png, fmt) -> None:
    sizes = [len(transcode_bytes(comfy_png, OutputOptions(fmt, q))[0]) for q in (10, 50, 95)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_resized_png_stays_lossless(comfy_png) -> None:
    data, _ = transcode_bytes(comfy_png, OutputOptions("png", max_width=100))
    expected = decode(comfy_png).resize((100, 50), Image.Resampling.LANCZOS)
    # Same pixels as a direct LANCZOS resize, give or take the reducing steps.
    difference = sum(
        abs(a - b) for a, b in zip(decode(data).tobytes(), expected.tobytes(), strict=True)
    )
    assert difference / (100 * 50 * 3) < 8


def test_jpeg_source_is_downscaled_through_draft() -> None:
    source = encode(noisy((800, 600)), "JPEG")
    data, converted = transcode_bytes(source, OutputOptions("jpeg", max_width=100))
    assert decode(data).size == (100, 75)
    assert converted.content_type == "image/jpeg"


# -- metadata --


def test_png_metadata_kept_by_default(comfy_png) -> None:
    for options in (OutputOptions(), OutputOptions("png", max_width=50)):
        data, _ = transcode_bytes(comfy_png, options)
        assert decode(data).text == {"prompt": PROMPT, "workflow": WORKFLOW}


def test_png_strip_drops_text_chunks_and_keeps_pixels(comfy_png) -> None:
    data, converted = transcode_bytes(comfy_png, OutputOptions(strip_metadata=True))

    stripped = decode(data)
    assert stripped.text == {}
    assert stripped.tobytes() == decode(comfy_png).tobytes()
    assert b"tEXt" not in data and b"KSampler" not in data
    assert converted == converted.__class__("image/png", ".png", passthrough=False)


def test_png_strip_with_resize(comfy_png) -> None:
    data, _ = transcode_bytes(comfy_png, OutputOptions("png", max_height=10, strip_metadata=True))
    assert decode(data).text == {}
    assert b"KSampler" not in data


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_lossy_formats_carry_the_workflow_in_exif_unless_stripped(comfy_png, fmt) -> None:
    kept, _ = transcode_bytes(comfy_png, OutputOptions(fmt))
    stripped, _ = transcode_bytes(comfy_png, OutputOptions(fmt, strip_metadata=True))

    exif = decode(kept).getexif()
    # ComfyUI's WebP convention, which its loader reads back.
    assert exif[0x0110] == f"prompt:{PROMPT}"
    assert exif[0x010F] == f"workflow:{WORKFLOW}"
    assert len(decode(stripped).getexif()) == 0
    assert b"KSampler" not in stripped


def test_jpeg_drops_metadata_too_large_for_exif() -> None:
    huge = encode(noisy((20, 10)), text={"workflow": "x" * 70_000})
    data, _ = transcode_bytes(huge, OutputOptions("jpeg"))
    assert decode(data).format == "JPEG"


# -- modes --


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "1", "I;16"])
@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png"])
def test_every_mode_converts(mode, fmt) -> None:
    source = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red
    source.paste((0, 0, 255, 255), (5, 0, 10, 10))  # opaque blue right half
    if mode == "P":
        source = source.convert("P")
        source.info["transparency"] = source.getpixel((0, 0))
    elif mode != "RGBA":
        source = source.convert(mode)

    data, _ = transcode_bytes(encode(source), OutputOptions(fmt, 95))

    image = decode(data)
    assert image.format == PIL_FORMAT[fmt] and image.size == (10, 10)
    if fmt == "jpeg" and mode in ("RGBA", "LA", "P"):
        # Transparent pixels flatten onto white, not black.
        assert min(image.convert("RGB").getpixel((1, 1))) > 240


def test_webp_keeps_alpha() -> None:
    source = Image.new("RGBA", (8, 8), (10, 20, 30, 0))
    data, _ = transcode_bytes(encode(source), OutputOptions("webp", 100))
    assert decode(data).mode == "RGBA"


# -- streams and failures --


class OneWay(io.RawIOBase):
    """A readable stream that cannot seek, like a socket."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize(
    "options", [OutputOptions(), OutputOptions(strip_metadata=True), OutputOptions("webp")]
)
def test_unseekable_source_streams(comfy_png, options) -> None:
    out = io.BytesIO()
    converted = transcode(OneWay(comfy_png), out, options)
    assert decode(out.getvalue()).size == (200, 100)
    assert converted.passthrough == options.untouched


def test_untouched_non_png_keeps_its_type() -> None:
    source = encode(noisy((20, 10)), "JPEG")
    data, converted = transcode_bytes(source, OutputOptions())
    assert data == source
    assert (converted.content_type, converted.extension) == ("image/jpeg", ".jpg")


@pytest.mark.parametrize(
    ("data", "options"),
    [
        (b"not an image at all", OutputOptions("jpeg")),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00", OutputOptions(strip_metadata=True)),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00", OutputOptions("webp")),
    ],
    ids=["garbage", "truncated-strip", "truncated-decode"],
)
def test_unreadable_input_is_a_bad_comfy_response(data, options) -> None:
    with pytest.raises(ComfyBadResponse):
        transcode_bytes(data, options)
