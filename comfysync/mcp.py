"""An MCP server: every stored workflow is a tool an AI agent can call.

    python -m comfysync.mcp --url http://127.0.0.1:5000 [--key KEY]     # stdio

Runs beside the gateway as its client (`comfysync.client`), so it works with
any deployment and its keys. A tool's input schema is the workflow's typed
parameters (`GET /api/workflows/<name>`; a workflow without any takes a
`prompt`); a call runs the workflow and answers with the result as JSON
(URLs, timings) and the first image itself as image content.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from typing import Any

import anyio
import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from .client import ApiError, Client
from .params.schema import inputs_schema as input_schema


def build_server(client: Client) -> Server[Any]:
    """The MCP server over one gateway client."""

    def tools() -> list[types.Tool]:
        found = []
        for name in client.workflows():
            schema = client.workflow(name)
            parameters = schema.get("parameters") or []
            found.append(
                types.Tool(
                    name=name,
                    description=schema.get("description") or f"Run the ComfyUI workflow {name}",
                    input_schema=input_schema(parameters),
                )
            )
        return found

    def call(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        declared = {p["name"] for p in client.workflow(name).get("parameters") or []}
        body: dict[str, Any] = {}
        if declared:
            body["inputs"] = arguments  # the gateway checks them against the declaration
        else:
            unknown = sorted(set(arguments) - {"prompt"})
            if unknown:
                text = f"{name} takes only 'prompt'; unknown: {', '.join(unknown)}"
                return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)
            if "prompt" in arguments:
                body["prompt"] = arguments["prompt"]
        try:
            result = client.generate(name, **body)
        except ApiError as err:
            text = json.dumps(err.body)
            return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)
        summary = {"run_id": result.run_id, "url": result.url, "images": result.images}
        content: list[Any] = [types.TextContent(text=json.dumps(summary))]
        if result.url:
            data = client.download(result.url)
            mime = (result.images[0].get("content_type") if result.images else None) or "image/png"
            content.append(types.ImageContent(data=base64.b64encode(data).decode(), mime_type=mime))
        return types.CallToolResult(content=content, structured_content=summary)

    async def on_list_tools(_ctx: Any, _params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=await anyio.to_thread.run_sync(tools))

    async def on_call_tool(_ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = dict(params.arguments or {})
        return await anyio.to_thread.run_sync(call, params.name, arguments)

    return Server(
        "comfysync",
        instructions="Each tool runs one ComfyUI workflow and returns its image.",
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


async def serve_stdio(client: Client) -> None:
    """Serve MCP over stdin/stdout until the client closes it."""
    server = build_server(client)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m comfysync.mcp")
    parser.add_argument("--url", default=os.environ.get("COMFYSYNC_URL", "http://127.0.0.1:5000"))
    parser.add_argument("--key", default=os.environ.get("COMFYSYNC_API_KEY"))
    args = parser.parse_args(argv)
    with Client(args.url, api_key=args.key) as client:
        anyio.run(serve_stdio, client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
