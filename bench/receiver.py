"""A webhook receiver for benchmarks: its own asyncio process, answering each POST late.

Every POST is read whole, its Standard Webhooks signature checked (HMAC-SHA256
over `<webhook-id>.<webhook-timestamp>.<body>`), and answered `204` after
`--delay-ms`, however many arrive at once: one raw asyncio protocol per
connection and a timer per answer, so thousands of slow answers cost it
little and it never limits what it measures. `GET /_stats` answers at once
with its counters; `GET /_received` with every delivery's arrival time and id;
`GET /_pause` holds every answer until `GET /_resume` (deliveries stop without
failing, for a control measured with the outbox full).

`python -m bench.receiver --ready-file F [--delay-ms 200] [--secret whsec_...]`;
the parent side is `Receiver`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import requests

from .processes import ROOT, _stop, _tail, raise_fd_limit


class State:
    def __init__(self, delay: float, key: bytes) -> None:
        self.delay = delay
        self.key = key
        self.received: list[tuple[float, str]] = []  # (arrival, webhook-id)
        self.ids: set[str] = set()
        self.bad_signatures = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections = 0
        self.paused = False  # answers held until resumed (the sender's slots sit waiting)
        self.held: list[tuple[ReceiverProtocol, float]] = []

    def verified(self, headers: dict[str, str], body: bytes) -> bool:
        if not self.key:
            return True
        content = f"{headers.get('webhook-id', '')}.{headers.get('webhook-timestamp', '')}."
        mac = hmac.new(self.key, content.encode() + body, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(mac).decode()
        offered = headers.get("webhook-signature", "").split()
        return any(hmac.compare_digest(expected, sig) for sig in offered)

    def stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "received": len(self.received),
            "unique": len(self.ids),
            "bad_signatures": self.bad_signatures,
            "in_flight": self.in_flight,
            "paused": self.paused,
            "held": len(self.held),
            "max_in_flight": self.max_in_flight,
            "connections": self.connections,
            "first": self.received[0][0] if self.received else None,
            "last": self.received[-1][0] if self.received else None,
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }


class ReceiverProtocol(asyncio.Protocol):
    """HTTP/1.1 requests one after another on a connection (keep-alive or not)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a request is being answered: later bytes wait
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.state.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._next()

    def _next(self) -> None:
        if self.busy or self.transport is None or self.transport.is_closing():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        method, path = (head[0].split(" ") + ["", ""])[:2]
        self.close_after = headers.get("connection", "").lower() == "close"
        if method == "GET":
            self._get(path)
            return
        now = time.time()
        state = self.state
        if not state.verified(headers, body):
            state.bad_signatures += 1
        webhook_id = headers.get("webhook-id", "")
        state.received.append((now, webhook_id))
        state.ids.add(webhook_id)
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        self.busy = True
        if state.paused:
            state.held.append((self, now))
        else:
            asyncio.get_running_loop().call_later(state.delay, self._answer)

    def _answer(self) -> None:
        self.state.in_flight -= 1
        self.busy = False
        self._respond(204, b"")

    def _get(self, path: str) -> None:
        state = self.state
        if path.startswith("/_pause"):
            state.paused = True
        elif path.startswith("/_resume"):
            state.paused = False
            loop = asyncio.get_running_loop()
            now = time.time()
            for proto, arrived in state.held:
                loop.call_later(max(0.0, arrived + state.delay - now), proto._answer)
            state.held = []
        if path.startswith("/_received"):
            payload = json.dumps(self.state.received).encode()
        else:
            payload = json.dumps(self.state.stats()).encode()
        self._respond(200, payload, "application/json")

    def _respond(self, status: int, body: bytes, content_type: str = "") -> None:
        if self.transport is None or self.transport.is_closing():
            return
        reason = {200: "OK", 204: "No Content"}[status]
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        if self.close_after:
            head += "Connection: close\r\n"
        self.transport.write(head.encode() + b"\r\n" + body)
        if self.close_after:
            self.transport.close()
        else:
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_")) if secret else b""


async def _serve(args: argparse.Namespace) -> None:
    state = State(args.delay_ms / 1000, _key(args.secret))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: ReceiverProtocol(state), "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    with open(args.ready_file + ".tmp", "w") as handle:
        handle.write(f"http://127.0.0.1:{port}\n")
    os.replace(args.ready_file + ".tmp", args.ready_file)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.receiver")
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--delay-ms", type=float, default=200.0)
    parser.add_argument("--secret", default="")
    args = parser.parse_args(argv)
    raise_fd_limit()
    asyncio.run(_serve(args))
    return 0


# -- the parent side ----------------------------------------------------------------------


class Receiver:
    """`python -m bench.receiver` on a free port; `url` is where webhooks go."""

    def __init__(self, delay_ms: float = 200.0, secret: str = "") -> None:
        self.workdir = tempfile.mkdtemp(prefix="bench-receiver-")
        self.delay_ms = delay_ms
        self.secret = secret
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""
        self.session = requests.Session()

    @property
    def url(self) -> str:
        return self.base + "/hooks/comfysync"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Receiver:
        ready = os.path.join(self.workdir, "ready")
        args = [sys.executable, "-m", "bench.receiver", "--ready-file", ready]
        args += ["--delay-ms", str(self.delay_ms), "--secret", self.secret]
        self.log_path = os.path.join(self.workdir, "receiver.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            if os.path.exists(ready):
                with open(ready) as handle:
                    self.base = handle.read().strip()
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the receiver did not start:\n{_tail(self.log_path)}")

    def stats(self) -> dict[str, Any]:
        return self.session.get(f"{self.base}/_stats", timeout=10).json()

    def pause(self) -> None:
        """Answer nothing until `resume`: deliveries stop, each sender slot held waiting."""
        self.session.get(f"{self.base}/_pause", timeout=10).raise_for_status()

    def resume(self) -> None:
        """Answer the held deliveries (each no sooner than the delay after it came)."""
        self.session.get(f"{self.base}/_resume", timeout=10).raise_for_status()

    def received(self) -> list[tuple[float, str]]:
        """(arrival epoch time, webhook-id) of every POST, in arrival order."""
        return [tuple(r) for r in self.session.get(f"{self.base}/_received", timeout=30).json()]

    def stop(self) -> None:
        self.session.close()
        if self.proc is not None:
            _stop(self.proc)
        import shutil

        shutil.rmtree(self.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
