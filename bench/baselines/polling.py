"""Status polling, as job-status APIs do: submit, then `GET /history/<id>` every 0.5 s."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from .comfy import UpstreamError, fetch_view, first_image, fresh_graph, submit

POLL_INTERVAL = 0.5
MAX_POLLS = 1200  # ten minutes: a request never polls forever


class PollingClient:
    """No WebSocket at all."""

    def __init__(self, comfy_url: str, graph: dict[str, Any]) -> None:
        self.comfy_url = comfy_url
        self.graph = graph

    async def open(self, session: aiohttp.ClientSession) -> None:
        return None

    async def one(self, session: aiohttp.ClientSession) -> tuple[str, int]:
        prompt_id, graph = fresh_graph(self.graph, "poll")
        await submit(session, self.comfy_url, graph, prompt_id, None)
        for _ in range(MAX_POLLS):
            async with session.get(f"{self.comfy_url}/history/{prompt_id}") as response:
                entry = (await response.json()).get(prompt_id)
            status = (entry or {}).get("status") or {}
            if status.get("completed"):
                image = first_image(entry.get("outputs") or {})
                return prompt_id, await fetch_view(session, self.comfy_url, image)
            if status.get("status_str") == "error":
                raise UpstreamError("the prompt failed")
            await asyncio.sleep(POLL_INTERVAL)
        raise UpstreamError("gave up polling")

    async def close(self) -> None:
        return None
