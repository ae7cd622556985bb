"""The one WebSocket a worker process keeps to a ComfyUI server.

A single reader greenlet receives every frame for this worker's `clientId`
and hands it to the `PromptWait` registered under its `prompt_id`. The socket
only makes us fast: whenever it drops or stalls, every open wait is checked
against ComfyUI's queue and history (the source of truth) after reconnecting.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import websocket

from .. import metrics
from ..errors import GatewayError, PromptLost
from ..greenlets import Background
from .client import ComfyClient
from .protocol import outcome_from_history
from .waits import FrameListener, PromptWait

log = logging.getLogger(__name__)

_TEXT = websocket.ABNF.OPCODE_TEXT
_CLOSE = websocket.ABNF.OPCODE_CLOSE
_READ_SIZE = 64 * 1024


class BufferedWebSocket(websocket.WebSocket):
    """A WebSocket that reads the socket in large pieces.

    websocket-client asks the socket for exactly the bytes it needs next: two
    for a frame header, two more for a length, then the payload. ComfyUI sends
    a dozen or more frames per prompt, often in one burst, so reading ahead
    turns three system calls per frame into one per burst.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_at = 0

    def _recv(self, bufsize: int) -> bytes:
        if self._read_at >= len(self._read_buffer):
            self._read_buffer = super()._recv(max(bufsize, _READ_SIZE))
            self._read_at = 0
        start, self._read_at = self._read_at, self._read_at + bufsize
        return self._read_buffer[start : self._read_at]


class ComfyWatcher:
    """Owns the WebSocket to one ComfyUI server and the waits keyed by prompt id."""

    def __init__(
        self,
        client: ComfyClient,
        ping_interval: float = 10.0,
        stall_timeout: float = 25.0,
        reconnect_max_delay: float = 5.0,
        reconcile_interval: float = 15.0,
        name: str = "default",
    ) -> None:
        self.name = name  # the server's name, for metrics (never its address)
        self.client = client
        self.server = client.base_url
        self.ping_interval = ping_interval
        self.stall_timeout = stall_timeout
        self.reconnect_max_delay = reconnect_max_delay
        self.reconcile_interval = reconcile_interval
        self.client_id = uuid.uuid4().hex
        self.waits: dict[str, PromptWait] = {}
        self.connected = False
        self.connections = 0  # sockets opened by this process, for status and benchmarks
        self.last_connected_at: float | None = None
        self.last_disconnected_at: float | None = None
        self.queue_remaining = 0  # the server's whole queue, from its status frames
        # Told True on every connect and False on every loss (the backend's health).
        self.on_connection: Callable[[bool], None] | None = None
        self._ws: websocket.WebSocket | None = None
        self._pid: int | None = None
        self._reconcile_pending: set[str] = set()
        self._reconciling = False
        self.background = Background("watcher")

    # -- lifecycle ------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start the reader in this process (once; again in a forked child)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self.client_id = uuid.uuid4().hex  # a fork must never share its parent's clientId
        self.background = Background("watcher")
        self.background.spawn(self._read_forever, name="reader")
        self.background.spawn(self._check_quiet_waits, name="quiet-check")

    def stop(self) -> None:
        """Close the socket and stop the greenlets."""
        self._pid = None
        self.background.kill()
        self._close_socket()

    # -- waits ----------------------------------------------------------------

    def register(
        self, prompt_id: str, *, gap: bool = False, listener: FrameListener | None = None
    ) -> PromptWait:
        """Start listening for `prompt_id`; call before submitting it.

        `gap` says frames may already have been missed (a prompt submitted
        earlier), so its outcome is read from the history, never the frames.
        """
        self.ensure_started()
        wait = PromptWait(prompt_id, gap=gap or not self.connected, listener=listener)
        self.waits[prompt_id] = wait
        return wait

    def unregister(self, wait: PromptWait) -> None:
        """Stop listening for a prompt."""
        if self.waits.get(wait.prompt_id) is wait:
            del self.waits[wait.prompt_id]

    # -- the reader ------------------------------------------------------------

    def _read_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                ws = self._connect()
            except Exception as err:  # noqa: BLE001 - any failure to connect means retry
                log.debug("websocket connect to %s failed: %s", self.server, err)
                gevent.sleep(delay)
                delay = min(delay * 2, self.reconnect_max_delay)
                continue
            delay = 0.1
            reconnect = self.connections > 0
            self.connections += 1
            self.connected = True
            self.last_connected_at = time.monotonic()
            log.info("websocket connected to %s (clientId %s)", self.server, self.client_id)
            if reconnect:
                metrics.RECONNECTS.labels(self.name).inc()
                self.request_reconcile(self.waits.values())
            if self.on_connection is not None:
                self.on_connection(True)
            pinger = self.background.spawn(self._ping_forever, ws, name="pinger")
            try:
                self._read(ws)
            except (websocket.WebSocketException, OSError) as err:
                if isinstance(err, websocket.WebSocketTimeoutException):
                    metrics.STALLS.labels(self.name).inc()
                log.warning("websocket to %s lost: %s", self.server, err or type(err).__name__)
            finally:
                pinger.kill(block=False)
                self._socket_lost()

    def _connect(self) -> websocket.WebSocket:
        # Frames are parsed as JSON right away, which rejects bad UTF-8 anyway;
        # websocket-client's own check is pure Python, byte by byte, and was
        # the largest single cost per prompt.
        ws = BufferedWebSocket(enable_multithread=True, skip_utf8_validation=True)
        ws.connect(
            f"{self.client.ws_url}?clientId={self.client_id}",
            timeout=self.client.timeout[0],
            suppress_origin=True,
            header=self.client.headers,
        )
        # Any frame, pong replies included, must arrive within this time;
        # otherwise the connection is stalled even if TCP still looks open.
        ws.settimeout(self.stall_timeout)
        self._ws = ws
        return ws

    def _read(self, ws: websocket.WebSocket) -> None:
        while True:
            opcode, frame = ws.recv_data_frame(control_frame=True)
            if opcode == _TEXT:
                self._dispatch(frame.data)
            elif opcode == _CLOSE:
                raise websocket.WebSocketConnectionClosedException("closed by ComfyUI")

    def _dispatch(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
            kind = message["type"]
            data = message.get("data") or {}
        except (ValueError, KeyError, TypeError):
            log.debug("ignoring malformed frame %r", raw[:200])
            return
        if not isinstance(data, dict):
            return
        prompt_id = data.get("prompt_id")
        if prompt_id is None:
            if kind == "status":
                self._read_status(data)
            return
        wait = self.waits.get(prompt_id)
        if wait is not None:
            wait.on_frame(kind, data)

    def _read_status(self, data: dict[str, Any]) -> None:
        # {"status": {"exec_info": {"queue_remaining": N}}, "sid": ...}
        info = (data.get("status") or {}).get("exec_info") or {}
        remaining = info.get("queue_remaining") if isinstance(info, dict) else None
        if isinstance(remaining, int) and remaining >= 0:
            self.queue_remaining = remaining

    def _ping_forever(self, ws: websocket.WebSocket) -> None:
        while True:
            gevent.sleep(self.ping_interval)
            try:
                ws.ping()
            except (websocket.WebSocketException, OSError):
                return

    def _socket_lost(self) -> None:
        self.connected = False
        self.last_disconnected_at = time.monotonic()
        self._close_socket()
        for wait in self.waits.values():
            wait.gap = True  # frames may be lost until we are back
        if self.on_connection is not None:
            self.on_connection(False)

    def _close_socket(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.abort()
                ws.close(timeout=0)
            except Exception:  # noqa: BLE001 - closing a broken socket may fail any way
                pass

    def drop(self) -> None:
        """Close the current socket (the reader reconnects); used on shutdown paths."""
        self._close_socket()

    # -- reconciliation with ComfyUI's queue and history ------------------------

    def _check_quiet_waits(self) -> None:
        while True:
            gevent.sleep(self.reconcile_interval)
            now = time.monotonic()
            quiet = [
                w
                for w in self.waits.values()
                if w.submitted and not w.settled and now - w.last_event > self.reconcile_interval
            ]
            if quiet:
                self.request_reconcile(quiet)

    def request_reconcile(self, waits: Iterable[PromptWait]) -> None:
        """Check these waits against ComfyUI soon, batching concurrent requests."""
        self._reconcile_pending.update(w.prompt_id for w in waits)
        if self._reconcile_pending and not self._reconciling:
            self._reconciling = True
            self.background.spawn(self._reconcile_loop, name="reconcile")

    def _reconcile_loop(self) -> None:
        try:
            while self._reconcile_pending:
                ids, self._reconcile_pending = self._reconcile_pending, set()
                waits = [self.waits[i] for i in ids if i in self.waits]
                try:
                    self.reconcile(waits)
                except GatewayError as err:
                    log.warning("could not reconcile with %s: %s", self.server, err)
                    return  # ComfyUI is away: the next reconnect reconciles again
        finally:
            self._reconciling = False

    def reconcile(self, waits: list[PromptWait]) -> None:
        """Settle waits whose prompts ComfyUI finished or lost while we were not looking.

        The queue is read before the history, so a prompt finishing in between
        is found in the history rather than reported lost.
        """
        waits = [w for w in waits if w.submitted and not w.settled]
        if not waits:
            return
        active = self.client.active_prompt_ids()
        finished = [w for w in waits if w.prompt_id not in active]
        for wait in waits:
            if wait.prompt_id in active:
                wait.last_event = time.monotonic()
        if not finished:
            return
        # One call for the newest entries usually covers every finished prompt;
        # a history shorter than asked for (as after a restart) covers all of it.
        wanted = len(finished) + 64
        recent = self.client.histories(max_items=wanted)
        complete = len(recent) < wanted
        for wait in finished:
            entry = recent.get(wait.prompt_id)
            if entry is None and not complete:
                entry = self.client.history(wait.prompt_id)
            outcome = outcome_from_history(entry) if entry else None
            if outcome is None:
                wait.fail(
                    PromptLost(
                        "ComfyUI no longer knows this prompt (it was probably restarted)",
                        prompt_id=wait.prompt_id,
                    )
                )
            else:
                wait.settle(outcome)

    def status(self) -> dict[str, Any]:
        """A snapshot for the status endpoint."""
        return {
            "server": self.server,
            "connected": self.connected,
            "client_id": self.client_id,
            "connections": self.connections,
            "waiting": len(self.waits),
        }
