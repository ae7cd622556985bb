"""Noticing, while a request waits, that its client has closed the connection."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from gevent import get_hub

log = logging.getLogger(__name__)


class DisconnectMonitor:
    """Watches the request's socket for readability without reading from it.

    A held request has sent its whole body, so the socket only becomes
    readable again when the client closes it (EOF) or pipelines another
    request. Peeking tells the two apart. The watcher lives in the event loop:
    no greenlet and no polling per waiting request.
    """

    def __init__(self, raw: socket.socket, on_gone: Callable[[], None]) -> None:
        self.raw = raw
        self.on_gone = on_gone
        self.watcher: Any = get_hub().loop.io(raw.fileno(), 1)
        self.watcher.start(self._on_readable)

    @classmethod
    def attach(
        cls, environ: dict[str, Any], on_gone: Callable[[], None]
    ) -> DisconnectMonitor | None:
        """Start monitoring the socket behind a WSGI request, when the server exposes it."""
        sock = environ.get("gunicorn.socket")
        raw = getattr(sock, "_sock", None)  # gevent's socket wraps the OS socket
        if raw is None or raw.fileno() < 0:
            return None
        return cls(raw, on_gone)

    def _on_readable(self) -> None:
        try:
            data = self.raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        self.stop()
        if not data:
            log.info("client closed its connection while waiting")
            self.on_gone()

    def stop(self) -> None:
        """Stop watching (idempotent)."""
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.stop()
            watcher.close()
