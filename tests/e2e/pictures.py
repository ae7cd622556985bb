"""Images for the end-to-end tests, and a small HTTP server on 127.0.0.1 that serves them."""

from __future__ import annotations

import io
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image

RGB = tuple[int, int, int]


def png(size: tuple[int, int] = (6, 4), color: RGB = (10, 200, 30)) -> bytes:
    """A small solid PNG."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG of about a hundred bytes whose header claims `width` x `height` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    pixels = zlib.compress(b"\x00" * 64, 9)  # far too little data: never decoded anyway
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def pixel(data: bytes, xy: tuple[int, int] = (0, 0)) -> RGB:
    """The RGB colour at `xy` of encoded image bytes."""
    with Image.open(io.BytesIO(data)) as image:
        red, green, blue = image.convert("RGB").getpixel(xy)  # type: ignore[misc]
        return red, green, blue


def size_of(data: bytes) -> tuple[int, int]:
    """Width and height of encoded image bytes."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def inverted(color: RGB | int) -> RGB:
    """What ImageInvert makes of a colour, given as (r, g, b) or 0xRRGGBB."""
    if isinstance(color, int):
        color = (color >> 16 & 255, color >> 8 & 255, color & 255)
    red, green, blue = color
    return 255 - red, 255 - green, 255 - blue


@dataclass
class Route:
    """A canned answer."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ImageServer:
    """A real HTTP server on 127.0.0.1; `paths` lists what it was asked, in order."""

    routes: dict[str, Route]
    port: int = 0
    paths: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def image_server(routes: dict[str, Route]) -> Iterator[ImageServer]:
    """Serve `routes` on a free loopback port; `/redirect?to=<url>` answers 302 to `url`."""
    state = ImageServer(routes=dict(routes))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            state.paths.append(self.path)
            parts = urlsplit(self.path)
            if parts.path == "/redirect":
                target = parse_qs(parts.query)["to"][0]
                route = Route(302, headers={"Location": target})
            else:
                route = state.routes.get(parts.path, Route(404, b"not here"))
            self.send_response(route.status)
            headers = {"Content-Type": "image/png", **route.headers}
            headers["Content-Length"] = str(len(route.body))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(route.body)

        def log_message(self, *args: object) -> None:
            pass  # keep the test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
