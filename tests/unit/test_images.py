"""Pixel sizes read from file headers agree with Pillow's."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from comfysync.images import HEAD_BYTES, header_size, probe_size


def encode(size: tuple[int, int], fmt: str, mode: str = "RGB", **save) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (10, 200, 30, 255)[: len(mode)]).save(out, fmt, **save)
    return out.getvalue()


CASES = [
    ((64, 48), "PNG", "RGB", {}),
    ((1, 3000), "PNG", "RGBA", {}),
    ((640, 480), "JPEG", "RGB", {"quality": 80}),
    ((513, 17), "JPEG", "RGB", {"progressive": True}),
    ((300, 200), "GIF", "RGB", {}),
    ((320, 240), "WEBP", "RGB", {"quality": 70}),  # lossy: VP8
    ((16383, 2), "WEBP", "RGBA", {"lossless": True}),  # VP8L
    ((97, 45), "WEBP", "RGBA", {"quality": 70, "exif": b"Exif\x00\x00MM"}),  # VP8X
]


@pytest.mark.parametrize(("size", "fmt", "mode", "save"), CASES)
def test_header_size_matches_pillow(size, fmt, mode, save) -> None:
    data = encode(size, fmt, mode, **save)
    assert Image.open(io.BytesIO(data)).size == size
    assert header_size(data[:HEAD_BYTES]) == size


def test_jpeg_frame_after_a_large_exif_block_falls_back_to_pillow(tmp_path) -> None:
    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000  # ImageDescription, pushing the frame header back
    data = encode((200, 100), "JPEG", exif=exif.tobytes())
    head = data[:1000]
    assert header_size(head) is None
    path = tmp_path / "big-exif.jpg"
    path.write_bytes(data)
    assert probe_size(str(path), head) == (200, 100)


@pytest.mark.parametrize(
    "head", [b"", b"\x89PNG\r\n\x1a\n\x00\x00", b"GIF89a\x01", b"\xff\xd8\xff"]
)
def test_truncated_or_unknown_headers_give_none(head: bytes) -> None:
    assert header_size(head) is None


def test_probe_size_of_a_non_image_is_none(tmp_path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not an image")
    assert probe_size(str(path), b"not an image") is None
