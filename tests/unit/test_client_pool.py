"""The ComfyUI client reuses kept-alive connections, and notices when ComfyUI closed one."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from comfysync.comfy.client import ComfyClient


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless we close
    close_after_reply = False
    peers: list[int] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.peers.append(self.client_address[1])
        body = json.dumps({"system": {"comfyui_version": "0.3.64"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        # Like an idle-timeout on ComfyUI's side: closed without a
        # "Connection: close", so the client only finds out by looking.
        self.close_connection = self.close_after_reply

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    handler = type("Handler", (_Handler,), {"peers": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, handler
    httpd.shutdown()
    httpd.server_close()


def test_kept_alive_connection_is_reused(server) -> None:
    httpd, handler = server
    client = ComfyClient(f"http://127.0.0.1:{httpd.server_port}", retries=0)
    for _ in range(3):
        assert client.system_stats()["system"]["comfyui_version"] == "0.3.64"
    assert len(set(handler.peers)) == 1
    client.close()


def test_connection_closed_by_comfyui_is_replaced_not_reported(server) -> None:
    httpd, handler = server
    handler.close_after_reply = True
    client = ComfyClient(f"http://127.0.0.1:{httpd.server_port}", retries=0)
    for _ in range(3):
        assert client.system_stats()["system"]["comfyui_version"] == "0.3.64"
        threading.Event().wait(0.05)  # let the close reach us
    assert len(set(handler.peers)) == 3
    client.close()


class _RecordingSocket:
    """Stands in for a connected socket and keeps every write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def settimeout(self, timeout: object) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))


def _connection_writes(method: str, body: bytes | None) -> list[bytes]:
    from comfysync.comfy.client import _Connection

    conn = _Connection("127.0.0.1", 8188)
    conn.sock = _RecordingSocket()  # type: ignore[assignment]
    conn.request(method, "/prompt", body=body, headers={"Content-Type": "application/json"})
    return conn.sock.writes  # type: ignore[attr-defined]


def test_prompt_goes_out_in_one_write_with_its_headers() -> None:
    body = json.dumps({"prompt": {"1": {"class_type": "EmptyImage", "inputs": {}}}}).encode()
    writes = _connection_writes("POST", body)
    assert len(writes) == 1
    head, sent = writes[0].split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /prompt HTTP/1.1\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert sent == body


def test_large_body_and_bodiless_requests_are_sent_unchanged() -> None:
    big = b"x" * (1024 * 1024)
    writes = _connection_writes("POST", big)
    assert len(writes) == 2 and writes[0].endswith(b"\r\n\r\n") and writes[1] == big
    writes = _connection_writes("GET", None)
    assert (
        len(writes) == 1
        and writes[0].startswith(b"GET /prompt ")
        and writes[0].endswith(b"\r\n\r\n")
    )
