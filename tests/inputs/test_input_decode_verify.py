"""Recognising image references, decoding base64 and data URLs, and Pillow's checks."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from comfysync.config import ConfigError, Settings
from comfysync.inputs.decode import SourceKind, classify, decode_base64, decode_data_url
from comfysync.inputs.errors import NotAnImage, TooLarge
from comfysync.inputs.settings import InputSettings
from comfysync.inputs.verify import verify_image

from .conftest import bomb_png, make_jpeg, make_png


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("https://example.com/a.png", SourceKind.URL),
        ("HTTP://example.com/a.png", SourceKind.URL),
        ("file:///etc/passwd", SourceKind.OTHER_SCHEME),
        ("ftp://host/a.png", SourceKind.OTHER_SCHEME),
        ("data:image/png;base64,iVBORw0KGgo=", SourceKind.DATA_URL),
        ("example.png", SourceKind.NAME),
        ("subfolder/photo 1.jpg", SourceKind.NAME),
        ("image", SourceKind.NAME),
        ("myupload", SourceKind.NAME),
        # A file in a mount named `C`: refused on preparing unless INPUT_MOUNTS allows one.
        ("C:\\images\\a.png", SourceKind.MOUNT),
    ],
)
def test_classify(value: str, kind: SourceKind) -> None:
    assert classify(value) is kind


def test_classify_raw_base64_of_an_image() -> None:
    assert classify(base64.b64encode(make_png()).decode()) is SourceKind.BASE64
    assert classify(base64.b64encode(make_jpeg()).decode()) is SourceKind.BASE64
    # Long base64-looking text is data, whatever it decodes to.
    assert classify("QUFB" * 100) is SourceKind.BASE64


def test_decode_base64_variants(png: bytes) -> None:
    standard = base64.b64encode(png).decode()
    assert decode_base64(standard, 1 << 20) == png
    assert decode_base64(standard.rstrip("="), 1 << 20) == png
    assert decode_base64(base64.urlsafe_b64encode(png).decode(), 1 << 20) == png
    wrapped = "\n".join(standard[i : i + 76] for i in range(0, len(standard), 76))
    assert decode_base64(wrapped, 1 << 20) == png


def test_decode_base64_rejects_garbage_and_oversize(png: bytes) -> None:
    with pytest.raises(NotAnImage):
        decode_base64("not base64 at all!", 1 << 20)
    with pytest.raises(TooLarge):
        decode_base64(base64.b64encode(png).decode(), len(png) - 10)


def test_decode_data_url(png: bytes) -> None:
    encoded = base64.b64encode(png).decode()
    assert decode_data_url(f"data:image/png;base64,{encoded}", 1 << 20) == png
    assert decode_data_url(f"data:;base64,{encoded}", 1 << 20) == png
    with pytest.raises(NotAnImage, match="base64"):
        decode_data_url("data:image/png,rawbytes", 1 << 20)
    with pytest.raises(NotAnImage, match="media type"):
        decode_data_url(f"data:text/html;base64,{encoded}", 1 << 20)


@pytest.mark.parametrize(
    ("data", "fmt", "extension"),
    [(make_png(), "PNG", ".png"), (make_jpeg(), "JPEG", ".jpg")],
)
def test_verify_accepts_real_images(data: bytes, fmt: str, extension: str) -> None:
    image = verify_image(data, max_bytes=1 << 20, max_pixels=1000)
    assert (image.format, image.extension, image.width, image.height) == (fmt, extension, 8, 6)
    assert image.data == data  # uploaded as sent, not re-encoded


@pytest.mark.parametrize(
    "data",
    [b"hello world", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"%PDF-1.4", make_png()[:40]],
)
def test_verify_rejects_non_images(data: bytes) -> None:
    with pytest.raises(NotAnImage):
        verify_image(data, max_bytes=1 << 20, max_pixels=1 << 20)


def test_verify_rejects_empty() -> None:
    with pytest.raises(NotAnImage, match="empty"):
        verify_image(b"", max_bytes=10, max_pixels=10)


def test_verify_rejects_format_outside_the_list() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PPM")
    with pytest.raises(NotAnImage):
        verify_image(buffer.getvalue(), max_bytes=1 << 20, max_pixels=1 << 20)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (7000, 7000),  # over our limit, under Pillow's warning threshold
        (10000, 10000),  # Pillow warns (over 89M): we refuse
        (50000, 50000),  # Pillow refuses outright (over 179M)
    ],
)
def test_decompression_bombs_are_rejected_before_decoding(width: int, height: int) -> None:
    data = bomb_png(width, height)
    assert len(data) < 100_000
    with pytest.raises(TooLarge):
        verify_image(data, max_bytes=1 << 20, max_pixels=40_000_000)


def test_verify_byte_limit(png: bytes) -> None:
    with pytest.raises(TooLarge):
        verify_image(png, max_bytes=len(png) - 1, max_pixels=1000)


def test_pixel_limit_counts_every_frame() -> None:
    frames = [Image.new("RGB", (10, 10), (i * 40, 0, 0)) for i in range(5)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(TooLarge, match="5 frame"):
        verify_image(buffer.getvalue(), max_bytes=1 << 20, max_pixels=400)
    assert verify_image(buffer.getvalue(), max_bytes=1 << 20, max_pixels=500).format == "GIF"


def test_alpha_variant_produces_rgba_png() -> None:
    image = verify_image(make_jpeg(), max_bytes=1 << 20, max_pixels=1000, alpha=True)
    assert (image.format, image.extension, image.mode) == ("PNG", ".png", "RGBA")
    with Image.open(io.BytesIO(image.data)) as decoded:
        assert decoded.mode == "RGBA" and decoded.getpixel((0, 0))[3] == 255


def test_alpha_variant_keeps_existing_alpha() -> None:
    rgba = make_png(mode="RGBA", color=(10, 20, 30, 77))
    image = verify_image(rgba, max_bytes=1 << 20, max_pixels=1000, alpha=True)
    assert image.data == rgba
    la = make_png(mode="LA", color=(100, 50))
    converted = verify_image(la, max_bytes=1 << 20, max_pixels=1000, alpha=True)
    with Image.open(io.BytesIO(converted.data)) as decoded:
        assert decoded.mode == "RGBA" and decoded.getpixel((0, 0))[3] == 50


def test_settings_from_env_defaults_and_values() -> None:
    assert Settings.from_env({}).inputs == InputSettings()
    settings = Settings.from_env(
        {
            "INPUT_MAX_BYTES": "5M",
            "INPUT_MAX_PIXELS": "1000000",
            "INPUT_FETCH_TIMEOUT": "7.5",
            "INPUT_FETCH_CONNECT_TIMEOUT": "2",
            "INPUT_MAX_REDIRECTS": "0",
            "INPUT_FETCH_CONCURRENCY": "2",
            "INPUT_MAX_IMAGES": "3",
            "INPUT_ALLOW_HOSTS": "minio, .corp.test, 10.0.0.0/8, 192.168.1.7, ::1",
        }
    ).inputs
    assert settings.max_bytes == 5 << 20 and settings.max_pixels == 1_000_000
    assert settings.fetch_timeout == 7.5 and settings.fetch_connect_timeout == 2.0
    assert settings.max_redirects == 0 and settings.fetch_concurrency == 2
    assert settings.max_images == 3
    assert settings.allow_hosts == ("minio", ".corp.test")
    assert [str(n) for n in settings.allow_networks] == ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INPUT_MAX_BYTES", "lots"),
        ("INPUT_MAX_PIXELS", "0"),
        ("INPUT_FETCH_TIMEOUT", "-1"),
        ("INPUT_MAX_REDIRECTS", "-2"),
        ("INPUT_FETCH_CONCURRENCY", "0"),
        ("INPUT_ALLOW_HOSTS", "http://evil/"),
    ],
)
def test_settings_errors_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
