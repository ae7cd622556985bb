"""The gateway's client: one POST to `/api/generate`, `/api/generate_file` or `/api/run`,
read to the end."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

CHUNK = 64 * 1024


class GatewayError(Exception):
    """The gateway answered with something other than 200."""


class GatewayClient:
    """POSTs the same body every time; the gateway makes each prompt unique itself."""

    def __init__(self, base_url: str, endpoint: str, body: dict[str, Any]) -> None:
        self.url = base_url + endpoint
        self.body = json.dumps(body).encode()

    async def open(self, session: aiohttp.ClientSession) -> None:
        return None

    async def one(self, session: aiohttp.ClientSession) -> tuple[str, int]:
        headers = {"Content-Type": "application/json"}
        async with session.post(self.url, data=self.body, headers=headers) as response:
            if response.status not in (200, 201):  # 201: /api/run accepted a run
                text = await response.text()
                raise GatewayError(f"HTTP {response.status}: {text[:200]}")
            prompt_id = response.headers.get("X-Prompt-Id", "")
            if prompt_id:  # /api/generate_file: the bytes themselves, streamed
                size = 0
                async for chunk in response.content.iter_chunked(CHUNK):
                    size += len(chunk)
                return prompt_id, size
            raw = await response.read()
            body = json.loads(raw)
            return body.get("prompt_id") or body.get("run_id", ""), len(raw)

    async def close(self) -> None:
        return None
