"""The MCP tool server, driven by the official SDK's own client over stdio, in front of
the real service: every stored workflow is a tool; calling one returns its image."""

from __future__ import annotations

import base64
import json
import os
import sys

import anyio
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from .harness import ROOT, Gateway
from .pictures import inverted, pixel

pytestmark = pytest.mark.e2e

STORED_COLOR = 1193046  # tests/fixtures/workflows/invert.json's EmptyImage


async def _session_calls(url: str) -> tuple[list, object, tuple]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "comfysync.mcp", "--url", url],
        cwd=ROOT,
        env={"PYTHONPATH": ROOT, "PATH": os.environ.get("PATH", "")},
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        called = await session.call_tool("invert", {})
        refused = await session.call_tool("text_to_size", {"text": 5})
        failed = await session.call_tool("invert", {"prompt": 5})  # the gateway's 400
        return listed.tools, called, (refused, failed)


def test_workflows_are_tools_that_return_their_image(shared_gateway: Gateway) -> None:
    tools, called, refused = anyio.run(_session_calls, shared_gateway.url)
    by_name = {tool.name: tool for tool in tools}
    assert {"invert", "text_to_size"} <= set(by_name)
    assert by_name["invert"].input_schema["type"] == "object"
    assert not called.is_error
    text, image = called.content
    summary = json.loads(text.text)
    assert summary["run_id"] and summary["url"]
    assert image.type == "image" and image.mime_type == "image/png"
    assert pixel(base64.b64decode(image.data)) == inverted(STORED_COLOR)
    unknown, bad = refused
    assert unknown.is_error and "unknown: text" in unknown.content[0].text
    assert bad.is_error and json.loads(bad.content[0].text)["status_code"] == 400
