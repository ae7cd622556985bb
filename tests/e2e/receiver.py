"""A webhook receiver on loopback that verifies signatures the way a real one would."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: dict[str, Any]
    verified: bool
    answered: int | None  # None: it was left to time out


class Receiver:
    """Answers each POST with the next entry of `script` (then `then`).

    An entry is a status code, `(status, {headers})`, or `"hang"` to answer
    only after `hang_for` seconds (a receiver too slow for the gateway).
    """

    def __init__(self, secret: str, script: list[Any] | None = None, then: Any = 204) -> None:
        self.webhook = Webhook(secret)
        self.script = list(script or [])
        self.then = then
        self.hang_for = 3.0
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    receiver.webhook.verify(raw, headers)
                    verified = True
                except Exception:  # noqa: BLE001 - any verification failure
                    verified = False
                with receiver.lock:
                    answer = receiver.script.pop(0) if receiver.script else receiver.then
                    entry = Received(time.time(), headers, json.loads(raw), verified, None)
                    receiver.received.append(entry)
                if answer == "hang":
                    time.sleep(receiver.hang_for)
                    answer = 204
                else:
                    entry.answered = answer if isinstance(answer, int) else answer[0]
                status, extra = (answer, {}) if isinstance(answer, int) else answer
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/comfysync"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self) -> list[Received]:
        """Requests answered with a 2xx."""
        return [r for r in self.received if r.answered is not None and 200 <= r.answered < 300]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
