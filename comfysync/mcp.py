"""An MCP server: every stored workflow is a tool an AI agent can call.

    python -m comfysync.mcp --url http://127.0.0.1:5000 [--key KEY]     # stdio
    python -m comfysync.mcp --http [--host 127.0.0.1] [--port 8765]    # streamable HTTP, /mcp

Runs beside the gateway as its client (`comfysync.client`), so it works with
any deployment and its keys. A tool's input schema is the workflow's typed
parameters (`GET /api/workflows/<name>`; a workflow without any takes a
`prompt`); a call runs the workflow and answers with the result as JSON
(URLs, timings) and the first image itself as image content.

Both transports serve the same `build_server`. The HTTP one is an ASGI app
(the SDK's session manager under uvicorn) in its own process, as the gateway's
gevent workers cannot host it. It binds to loopback unless told otherwise,
refuses `Host` and `Origin` headers it was not given (DNS rebinding), and with
`MCP_TOKEN` set wants `Authorization: Bearer <token>` on every request.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import os
import sys
from typing import Any

import anyio
import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .client import ApiError, Client
from .params.schema import inputs_schema as input_schema

HTTP_PATH = "/mcp"
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_ANY_ADDRESS = ("0.0.0.0", "::", "")


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


def allowed_hosts(bind: str, names: list[str]) -> list[str]:
    """`Host` values the HTTP transport accepts: loopback, the bound address, and `names`.

    Each with any port or none (a proxy on port 80 or 443 sends none).
    """
    hosts = list(_LOOPBACK)
    if bind not in _ANY_ADDRESS:
        hosts.append(f"[{bind}]" if ":" in bind else bind)
    hosts += [name for name in names if name]
    unique = list(dict.fromkeys(hosts))
    return [form for host in unique for form in (host, f"{host}:*")]


class BearerToken:
    """ASGI middleware: a 401 for any HTTP request without `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            body = {"error": "Authorization: Bearer <MCP_TOKEN> required", "status_code": 401}
            refusal = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), self.token)


def http_app(
    client: Client, *, host: str, names: list[str] | None = None, token: str | None = None
) -> ASGIApp:
    """The streamable HTTP transport as an ASGI app, at `HTTP_PATH`."""
    hosts = allowed_hosts(host, names or [])
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")],
    )
    app: ASGIApp = build_server(client).streamable_http_app(
        streamable_http_path=HTTP_PATH, transport_security=security
    )
    return BearerToken(app, token) if token else app


def serve_http(client: Client, host: str, port: int, **options: Any) -> None:
    """Serve MCP over streamable HTTP at http://<host>:<port>/mcp until SIGINT or SIGTERM."""
    import uvicorn

    app = http_app(client, host=host, **options)
    # A client's standing GET stream never ends by itself: bound the wait for it at shutdown.
    uvicorn.run(app, host=host, port=port, timeout_graceful_shutdown=5, log_level="info")


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m comfysync.mcp")
    parser.add_argument("--url", default=os.environ.get("COMFYSYNC_URL", "http://127.0.0.1:5000"))
    parser.add_argument("--key", default=os.environ.get("COMFYSYNC_API_KEY"))
    parser.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (HTTP)")
    parser.add_argument("--port", type=int, default=8765, help="port to bind (HTTP)")
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[h.strip() for h in os.environ.get("MCP_ALLOWED_HOSTS", "").split(",")],
        help="a name clients reach this server by, besides loopback (HTTP; repeatable)",
    )
    args = parser.parse_args(argv)
    with Client(args.url, api_key=args.key) as client:
        if args.http:
            token = os.environ.get("MCP_TOKEN") or None
            serve_http(client, args.host, args.port, names=args.allow_host, token=token)
        else:
            anyio.run(serve_stdio, client)
    return 0


if __name__ == "__main__":
    sys.exit(main())
