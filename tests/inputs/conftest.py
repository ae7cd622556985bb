"""Fixtures for the input-image tests: images, a local HTTP server, a network guard."""

from __future__ import annotations

import io
import ipaddress
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3.util.connection
from PIL import Image


def make_png(size: tuple[int, int] = (8, 6), mode: str = "RGB", color=(200, 30, 30)) -> bytes:
    """A small real PNG."""
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def make_jpeg(size: tuple[int, int] = (8, 6)) -> bytes:
    """A small real JPEG."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header claims `width` x `height` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    idat = zlib.compress(row * min(height, 4), 9)  # truncated: never decoded anyway
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


@pytest.fixture
def png() -> bytes:
    return make_png()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Fail any test whose code would open a connection outside loopback."""
    opened: list[tuple[str, int]] = []
    real = urllib3.util.connection.create_connection

    def guarded(address, *args, **kwargs):
        host, port = address
        if not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"test tried to connect to {host}:{port}")
        opened.append((host, port))
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", guarded)
    return opened


@dataclass
class ImageServer:
    """A real HTTP server on 127.0.0.1 serving canned routes; records what it was asked."""

    routes: dict[str, Callable[[BaseHTTPRequestHandler], None]]
    requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def image_server(png: bytes) -> Iterator[ImageServer]:
    server_state = ImageServer(routes={})

    def send(handler, status=200, body=b"", headers=None):
        handler.send_response(status)
        headers = {"Content-Type": "image/png", "Content-Length": str(len(body)), **(headers or {})}
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)

    def redirect(handler):
        target = parse_qs(urlsplit(handler.path).query)["to"][0]
        send(handler, 302, headers={"Location": target})

    def stream_forever(handler):
        # No Content-Length: the client must stop on its own byte count.
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.end_headers()
        try:
            for _ in range(1000):
                handler.wfile.write(b"\x00" * 65536)
        except OSError:
            pass

    def slow(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        try:
            for _ in range(40):
                handler.wfile.write(b"\x00")
                handler.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    server_state.routes.update(
        {
            "/image.png": lambda h: send(h, body=png),
            "/text": lambda h: send(h, body=b"hello", headers={"Content-Type": "text/plain"}),
            "/missing": lambda h: send(h, 404, b"no"),
            "/redirect": redirect,
            "/loop": lambda h: send(h, 302, headers={"Location": "/loop"}),
            "/huge-declared": lambda h: send(
                h, body=b"x" * 10, headers={"Content-Length": "999999999"}
            ),
            "/stream": stream_forever,
            "/slow": slow,
        }
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            server_state.requests.append({"path": self.path, **dict(self.headers)})
            route = server_state.routes.get(urlsplit(self.path).path)
            if route is None:
                send(self, 404, b"")
            else:
                route(self)

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server_state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
