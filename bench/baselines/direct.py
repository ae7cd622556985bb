"""The reference client: one persistent WebSocket, `POST /prompt`, wait, `GET /view`.

This is the least any client of ComfyUI must do, and exactly the gateway's own
work minus HTTP to its client: one socket for the whole process, frames routed
to the waiting request by prompt id, outputs taken from the `executed` frames.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .comfy import UpstreamError, fetch_view, first_image, fresh_graph, submit, ws_url


@dataclass
class _Pending:
    future: asyncio.Future[dict[str, Any]]
    outputs: dict[str, Any] = field(default_factory=dict)


class DirectClient:
    """Many concurrent requests over one WebSocket, like the gateway's worker."""

    def __init__(self, comfy_url: str, graph: dict[str, Any]) -> None:
        self.comfy_url = comfy_url
        self.graph = graph
        self.client_id = uuid.uuid4().hex
        self.pending: dict[str, _Pending] = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None

    async def open(self, session: aiohttp.ClientSession) -> None:
        self.ws = await session.ws_connect(ws_url(self.comfy_url, self.client_id), max_msg_size=0)
        self.reader = asyncio.create_task(self._read(self.ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue  # binary frames are previews
            frame = json.loads(message.data)
            data = frame.get("data") or {}
            pending = self.pending.get(data.get("prompt_id"))
            if pending is None or pending.future.done():
                continue
            kind = frame.get("type")
            if kind == "executed" and isinstance(data.get("output"), dict):
                pending.outputs[str(data["node"])] = data["output"]
            elif kind == "execution_success":
                pending.future.set_result(pending.outputs)
            elif kind in ("execution_error", "execution_interrupted"):
                pending.future.set_exception(UpstreamError(f"{kind} in node {data.get('node_id')}"))
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(UpstreamError("the WebSocket closed"))

    async def one(self, session: aiohttp.ClientSession) -> tuple[str, int]:
        prompt_id, graph = fresh_graph(self.graph, "direct")
        pending = _Pending(asyncio.get_running_loop().create_future())
        self.pending[prompt_id] = pending  # before submitting: no frame can be missed
        try:
            await submit(session, self.comfy_url, graph, prompt_id, self.client_id)
            outputs = await pending.future
        finally:
            del self.pending[prompt_id]
        return prompt_id, await fetch_view(session, self.comfy_url, first_image(outputs))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await asyncio.wait([self.reader], timeout=5)
