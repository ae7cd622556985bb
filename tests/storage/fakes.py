"""Test doubles: sample images and a small OSS server that checks V1 signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from PIL import Image, PngImagePlugin

PROMPT_ID = "3f2a9c1e-7b4d-4e8a-9f1c-2d5b6a7e8c90"


def png_bytes(text: dict[str, str] | None = None, size: tuple[int, int] = (8, 6)) -> bytes:
    """A small PNG, optionally with tEXt chunks like ComfyUI's workflow metadata."""
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 10)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


@dataclass
class OssObject:
    body: bytes
    content_type: str


@dataclass
class FakeOss:
    """State of the fake: one bucket, known keys, stored objects, injected failures."""

    bucket: str
    keys: dict[str, str]  # access key id -> secret
    objects: dict[str, OssObject] = field(default_factory=dict)
    fail_next: int = 0  # answer this many PUTs with 503 first
    requests: list[str] = field(default_factory=list)
    endpoint: str = ""

    def sign(self, secret: str, string_to_sign: str) -> str:
        digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()


def _error(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>5C3D9175B6FC201293AD4890</RequestId><HostId>fake</HostId></Error>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    """Checks each request as OSS does (V1 signature in the header or the query)."""

    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output clean

    def _reply(self, status: int, body: bytes = b"", content_type: str = "application/xml") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-oss-request-id", "5C3D9175B6FC201293AD4890")
        if status == 200 and self.command == "PUT":
            self.send_header("ETag", '"etag"')
        self.end_headers()
        self.wfile.write(body)

    def _resource(self) -> tuple[str, str]:
        path = unquote(urlsplit(self.path).path)
        bucket, _, key = path.lstrip("/").partition("/")
        return bucket, key

    def _canonical_oss_headers(self) -> str:
        pairs = sorted(
            (name.lower(), value.strip())
            for name, value in self.headers.items()
            if name.lower().startswith("x-oss-")
        )
        return "".join(f"{name}:{value}\n" for name, value in pairs)

    def do_PUT(self) -> None:
        fake = self.server.fake
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        fake.requests.append(f"PUT {self.path}")
        if fake.fail_next > 0:
            fake.fail_next -= 1
            return self._reply(503, _error("ServiceUnavailable", "Please retry"))
        bucket, key = self._resource()
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("OSS ") or ":" not in auth:
            return self._reply(403, _error("AccessDenied", "Missing authorization"))
        key_id, signature = auth[4:].split(":", 1)
        if key_id not in fake.keys:
            return self._reply(
                403, _error("InvalidAccessKeyId", "The OSS Access Key Id does not exist.")
            )
        date = self.headers.get("Date", "")
        if abs(parsedate_to_datetime(date).timestamp() - time.time()) > 900:
            return self._reply(403, _error("RequestTimeTooSkewed", "Date too far off"))
        md5 = self.headers.get("Content-MD5", "")
        content_type = self.headers.get("Content-Type", "")
        string_to_sign = "\n".join(
            ["PUT", md5, content_type, date, self._canonical_oss_headers() + f"/{bucket}/{key}"]
        )
        if signature != fake.sign(fake.keys[key_id], string_to_sign):
            return self._reply(
                403,
                _error(
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you "
                    "provided. Check your key and signing method.",
                ),
            )
        if bucket != fake.bucket:
            return self._reply(404, _error("NoSuchBucket", "The specified bucket does not exist."))
        if md5 and md5 != base64.b64encode(hashlib.md5(body).digest()).decode():
            return self._reply(400, _error("InvalidDigest", "Content-MD5 mismatch"))
        fake.objects[key] = OssObject(body, content_type)
        return self._reply(200)

    def do_GET(self) -> None:
        fake = self.server.fake
        fake.requests.append(f"GET {self.path}")
        bucket, key = self._resource()
        query = {name: values[0] for name, values in parse_qs(urlsplit(self.path).query).items()}
        key_id, expires = query.get("OSSAccessKeyId", ""), query.get("Expires", "0")
        if key_id not in fake.keys:
            return self._reply(403, _error("AccessDenied", "Anonymous access is forbidden"))
        if int(expires) < time.time():
            return self._reply(403, _error("AccessDenied", "Request has expired."))
        expected = fake.sign(fake.keys[key_id], f"GET\n\n\n{expires}\n/{bucket}/{key}")
        if query.get("Signature") != expected:
            return self._reply(403, _error("SignatureDoesNotMatch", "Signature mismatch"))
        stored = fake.objects.get(key) if bucket == fake.bucket else None
        if stored is None:
            return self._reply(404, _error("NoSuchKey", "The specified key does not exist."))
        return self._reply(200, stored.body, stored.content_type)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOss


@contextmanager
def fake_oss_server(bucket: str, keys: dict[str, str]) -> Iterator[FakeOss]:
    """Run a FakeOss on 127.0.0.1 on a free port for the duration of the block."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = FakeOss(bucket=bucket, keys=keys)
    server.fake.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-oss", daemon=True
    )
    thread.start()
    try:
        yield server.fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
