"""The common design: a new WebSocket per request, then `/history` and `/view`.

Many ComfyUI wrappers do this: open `/ws?clientId=<new id>`, submit, read
frames until the prompt finishes, close, then read the outputs from the
history entry.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import aiohttp

from .comfy import UpstreamError, fetch_view, first_image, fresh_graph, submit, ws_url


class PerRequestSocketClient:
    """One WebSocket per request."""

    def __init__(self, comfy_url: str, graph: dict[str, Any]) -> None:
        self.comfy_url = comfy_url
        self.graph = graph

    async def open(self, session: aiohttp.ClientSession) -> None:
        return None

    async def one(self, session: aiohttp.ClientSession) -> tuple[str, int]:
        prompt_id, graph = fresh_graph(self.graph, "socket")
        client_id = uuid.uuid4().hex
        async with session.ws_connect(ws_url(self.comfy_url, client_id), max_msg_size=0) as ws:
            await submit(session, self.comfy_url, graph, prompt_id, client_id)
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                frame = json.loads(message.data)
                data = frame.get("data") or {}
                if data.get("prompt_id") != prompt_id:
                    continue
                kind = frame.get("type")
                if kind == "execution_success":
                    break
                if kind in ("execution_error", "execution_interrupted"):
                    raise UpstreamError(kind)
            else:
                raise UpstreamError("the WebSocket closed before the prompt finished")
        async with session.get(f"{self.comfy_url}/history/{prompt_id}") as response:
            entry = (await response.json()).get(prompt_id) or {}
        image = first_image(entry.get("outputs") or {})
        return prompt_id, await fetch_view(session, self.comfy_url, image)

    async def close(self) -> None:
        return None
