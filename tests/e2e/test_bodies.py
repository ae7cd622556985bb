"""Request bodies as a hostile or broken client sends them, over a raw socket to gunicorn."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from .harness import Gateway, Simulator, chain

LIMIT = 4096
BODY_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def gateway(shared_sim: Simulator) -> Iterator[Gateway]:
    gateway = Gateway(
        shared_sim.url, env={"MAX_CONTENT_LENGTH": str(LIMIT), "BODY_TIMEOUT": str(BODY_TIMEOUT)}
    ).start()
    yield gateway
    gateway.stop()


def _exchange(gateway: Gateway, data: bytes, wait: float = 10) -> tuple[int, dict, bool]:
    """Send raw bytes; (status, JSON body, whether the server closed the connection)."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=wait) as sock:
        sock.sendall(data)
        received = b""
        closed = False
        while b"\r\n\r\n" not in received or len(received) < _length(received):
            chunk = sock.recv(65536)
            if not chunk:
                closed = True
                break
            received += chunk
        if not closed:
            sock.settimeout(0.5)
            try:
                closed = sock.recv(1) == b""
            except TimeoutError:
                closed = False
            except ConnectionResetError:
                closed = True
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body), closed


def _length(received: bytes) -> int:
    head, _, _ = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return 1 << 30


def _chunked(*chunks: bytes, path: str = "/api/generate") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    return head + b"".join(chunks)


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_a_chunked_body_is_read_whole(gateway: Gateway) -> None:
    body = json.dumps({"workflow_data": chain(0x336699)}).encode()
    half = len(body) // 2
    status, answer, _ = _exchange(
        gateway, _chunked(_chunk(body[:half]), _chunk(body[half:]), b"0\r\n\r\n")
    )
    assert status == 200, answer
    assert answer["status"] == "success"


def test_a_chunked_body_past_the_limit_is_413(gateway: Gateway) -> None:
    body = json.dumps({"workflow": "invert", "prompt": "x" * LIMIT}).encode()
    status, answer, closed = _exchange(gateway, _chunked(_chunk(body), b"0\r\n\r\n"))
    assert status == 413 and answer["status_code"] == 413
    assert closed  # the rest of a chunked body is never drained


def test_a_chunked_body_that_never_ends_is_cut(gateway: Gateway) -> None:
    # Past the limit the server stops reading: draining an endless body would
    # hold the connection for as long as the client likes. Closing on unread
    # data may reset the connection before the 413 is read: either is an end.
    ended = False
    received = b""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(_chunked())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not ended:
            try:
                sock.sendall(_chunk(b"x" * 1024))
                sock.settimeout(0.01)
                chunk = sock.recv(65536)
                ended = not chunk
                received += chunk
            except TimeoutError:
                continue
            except OSError:
                ended = True
    assert ended
    assert not received or received.startswith(b"HTTP/1.1 413"), received[:200]


@pytest.mark.parametrize(
    "broken",
    [
        b"zz\r\nabc\r\n0\r\n\r\n",  # not a hex size
        b"3\r\nabcdef\r\n0\r\n\r\n",  # more data than the size said
        b"3;" + b"x" * 100_000 + b"\r\nabc\r\n0\r\n\r\n",  # an endless chunk extension
    ],
)
def test_a_malformed_chunked_body_is_400_and_the_connection_closes(
    gateway: Gateway, broken: bytes
) -> None:
    status, answer, closed = _exchange(gateway, _chunked(broken))
    assert status == 400, answer
    assert "chunked encoding" in answer["error"]
    assert closed


def test_a_body_that_stops_arriving_is_408_and_the_connection_closes(gateway: Gateway) -> None:
    head = (
        b"POST /api/generate HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    started = time.monotonic()
    status, answer, closed = _exchange(gateway, head + b'{"workflow": ')
    assert status == 408, answer
    assert f"within {BODY_TIMEOUT:g} s" in answer["error"]
    assert closed
    assert time.monotonic() - started < BODY_TIMEOUT + 5


def test_a_slow_chunked_body_is_408(gateway: Gateway) -> None:
    status, answer, closed = _exchange(gateway, _chunked(b"10\r\nabc"))
    assert status == 408, answer
    assert closed


def test_no_traceback_in_the_log(gateway: Gateway) -> None:
    assert "Traceback" not in gateway.logs()
