"""WebSocket registry and ComfyUI's frame routing, with drop/stall fault hooks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4


@dataclass(eq=False)
class Connection:
    """One accepted socket: its outgoing queue, writer task and fault state."""

    ws: web.WebSocketResponse
    transport: asyncio.BaseTransport | None
    sid: str
    feature_flags: dict[str, Any] = field(default_factory=dict)
    stalled_until: float = 0.0
    queue: asyncio.Queue[str | bytes | None] = field(default_factory=asyncio.Queue)
    writer: asyncio.Task[None] | None = None

    @property
    def stalled(self) -> bool:
        return self.stalled_until > time.monotonic()

    def push(self, message: str | bytes) -> None:
        """Queue a frame unless the link is stalled (frames sent into a dead link are lost)."""
        if not self.stalled:
            self.queue.put_nowait(message)

    async def run_writer(self) -> None:
        """Send queued frames in order; ends on None or a broken connection."""
        while True:
            msg = await self.queue.get()
            if msg is None or self.ws.closed:
                return
            try:
                if isinstance(msg, str):
                    await self.ws.send_str(msg)
                else:
                    await self.ws.send_bytes(msg)
            except (ConnectionError, RuntimeError):
                return

    def abort(self) -> None:
        """Close the TCP connection without a WebSocket close frame."""
        if self.transport is not None:
            self.transport.abort()  # type: ignore[attr-defined]
        self.queue.put_nowait(None)


class Hub:
    """sid -> socket map with ComfyUI's send rules (sid None = broadcast)."""

    def __init__(self) -> None:
        self.sockets: dict[str, Connection] = {}
        self.all_connections: set[Connection] = set()
        self.accepted_total = 0
        self.client_ids_seen: set[str] = set()
        self.frames_sent = 0

    def register(self, conn: Connection) -> None:
        """A new socket takes over its clientId; the older socket gets nothing more."""
        self.sockets.pop(conn.sid, None)
        self.sockets[conn.sid] = conn
        self.all_connections.add(conn)
        self.accepted_total += 1
        self.client_ids_seen.add(conn.sid)
        conn.writer = asyncio.get_running_loop().create_task(conn.run_writer())

    def unregister(self, conn: Connection) -> None:
        """Socket handler finished.

        Like ComfyUI this pops the sid even if a newer socket took it over, so the newer
        socket stops receiving frames when the older one closes late.
        """
        self.sockets.pop(conn.sid, None)
        self.all_connections.discard(conn)
        conn.queue.put_nowait(None)

    def _targets(self, sid: str | None) -> list[Connection]:
        if sid is None:
            return list(self.sockets.values())
        conn = self.sockets.get(sid)
        return [conn] if conn is not None else []

    def send(self, event: str, data: Any, sid: str | None = None) -> None:
        """Serialize once and queue a JSON frame to one client or to everybody."""
        targets = self._targets(sid)
        if not targets:
            return
        text = json.dumps({"type": event, "data": data})
        for conn in targets:
            conn.push(text)
        self.frames_sent += len(targets)

    def send_to(self, conn: Connection, event: str, data: Any) -> None:
        """Queue a JSON frame to one specific connection (the initial status)."""
        conn.push(json.dumps({"type": event, "data": data}))

    def send_bytes(self, event: int, payload: bytes, sid: str | None = None) -> None:
        """Queue a binary frame: 4-byte big-endian event type, then the payload."""
        message = struct.pack(">I", event) + payload
        for conn in self._targets(sid):
            conn.push(message)

    def supports_metadata(self, sid: str | None) -> bool:
        """Did this client announce supports_preview_metadata?"""
        conn = self.sockets.get(sid) if sid is not None else None
        return bool(conn and conn.feature_flags.get("supports_preview_metadata", False))

    def drop_all(self) -> int:
        """Abort every open socket (TCP close, no close frame); return how many."""
        conns = list(self.all_connections)
        for conn in conns:
            conn.abort()
        self.sockets.clear()
        return len(conns)

    def stall_all(self, seconds: float) -> int:
        """Make every open socket silent (no frames, no pongs) for `seconds`."""
        until = time.monotonic() + seconds
        for conn in self.all_connections:
            conn.stalled_until = until
        return len(self.all_connections)

    def unstall_all(self) -> None:
        """End a stall early."""
        for conn in self.all_connections:
            conn.stalled_until = 0.0


async def serve_socket(
    request: web.Request, hub: Hub, sid: str, on_open: Any, features: dict[str, Any]
) -> web.WebSocketResponse:
    """Run one /ws connection: register, greet, answer pings and feature flags."""
    # autoping is off so pongs can be withheld while a stall is simulated.
    ws = web.WebSocketResponse(autoping=False)
    await ws.prepare(request)
    conn = Connection(ws, request.transport, sid)
    hub.register(conn)
    try:
        on_open(conn)
        first = True
        async for msg in ws:
            if msg.type == web.WSMsgType.PING:
                if not conn.stalled:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await ws.pong(msg.data)
            elif msg.type == web.WSMsgType.TEXT:
                try:
                    data = json.loads(msg.data)
                    if first and isinstance(data, dict) and data.get("type") == "feature_flags":
                        conn.feature_flags = data.get("data", {}) or {}
                        hub.send_to(conn, "feature_flags", features)
                    first = False
                except (ValueError, AttributeError):
                    pass
            elif msg.type == web.WSMsgType.CLOSE:
                await ws.close()
    finally:
        hub.unregister(conn)
    return ws
