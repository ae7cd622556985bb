"""The MCP tool server, driven by the official SDK's own clients over stdio and over
streamable HTTP, in front of the real service: every stored workflow is a tool; calling
one returns its image."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import anyio
import httpx2
import pytest
import requests
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from .harness import ROOT, Gateway, _free_port, _stop
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


@pytest.fixture
def mcp_http(tmp_path) -> Iterator[Callable[..., str]]:
    """Start `python -m comfysync.mcp --http` against a gateway; its /mcp URL. Each one must
    shut down within seconds of SIGTERM once the test is done with it."""
    started: list[tuple[subprocess.Popen[bytes], str]] = []

    def start(gateway_url: str, **env: str) -> str:
        port = _free_port()
        log = str(tmp_path / f"mcp-{port}.log")
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "comfysync.mcp", "--http", "--port", str(port)]
                + ["--url", gateway_url],
                cwd=ROOT,
                env={"PYTHONPATH": ROOT, "PATH": os.environ.get("PATH", ""), **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append((proc, log))
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return f"http://127.0.0.1:{port}/mcp"
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    _stop(proc)
                    with open(log, errors="replace") as handle:
                        raise RuntimeError(f"MCP server did not start:\n{handle.read()}") from None
                time.sleep(0.1)

    yield start
    for proc, log in started:
        proc.terminate()
        try:
            code = proc.wait(15)
        finally:
            _stop(proc)
        with open(log, errors="replace") as handle:
            logged = handle.read()
        # uvicorn shuts down, then dies of the signal it caught, as an unhandled one would.
        assert code == -signal.SIGTERM and "Application shutdown complete" in logged, logged


async def _http_calls(url: str, headers: dict[str, str] | None = None) -> tuple[list, object]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        listed = await session.list_tools()
        called = await session.call_tool("invert", {})
        return listed.tools, called


def test_over_http_workflows_are_tools_that_return_their_image(
    shared_gateway: Gateway, mcp_http
) -> None:
    url = mcp_http(shared_gateway.url)
    tools, called = anyio.run(_http_calls, url)
    assert {"invert", "text_to_size"} <= {tool.name for tool in tools}
    assert not called.is_error
    text, image = called.content
    summary = json.loads(text.text)
    assert image.type == "image" and image.mime_type == "image/png"
    assert pixel(base64.b64decode(image.data)) == inverted(STORED_COLOR)
    served = shared_gateway.get(summary["url"])  # the URL the agent is given serves the image
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/png"
    assert pixel(served.content) == inverted(STORED_COLOR)
    assert [img["url"] for img in summary["images"]][0] == summary["url"]


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "curl", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def test_over_http_the_token_and_the_host_are_checked(shared_gateway: Gateway, mcp_http) -> None:
    url = mcp_http(shared_gateway.url, MCP_TOKEN="s3cret")
    tools, called = anyio.run(_http_calls, url, {"Authorization": "Bearer s3cret"})
    assert "invert" in {tool.name for tool in tools} and not called.is_error

    for wrong in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic s3cret"}):
        refused = requests.post(url, json=INITIALIZE, headers=MCP_HEADERS | wrong, timeout=10)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"

    # A page on another site that makes the browser send to a name resolving to 127.0.0.1.
    authorized = MCP_HEADERS | {"Authorization": "Bearer s3cret"}
    rebound = requests.post(
        url, json=INITIALIZE, headers=authorized | {"Host": "evil.example:80"}, timeout=10
    )
    assert rebound.status_code == 421
    cross_site = requests.post(
        url, json=INITIALIZE, headers=authorized | {"Origin": "https://evil.example"}, timeout=10
    )
    assert cross_site.status_code == 403
    accepted = requests.post(url, json=INITIALIZE, headers=authorized, timeout=10)
    assert accepted.status_code == 200
