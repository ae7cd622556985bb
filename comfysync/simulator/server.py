"""The simulated ComfyUI process: aiohttp routes, queue, executor and settings."""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from . import files, jobs
from .catalog import model_files, object_info
from .config import SimConfig, version_data
from .executor import Executor, now_ms
from .history import SENSITIVE_EXTRA_DATA_KEYS, PromptQueue, QueueItem
from .nodes import registry
from .storage import DataDirs
from .validation import Validator, image_exists_in
from .ws import Connection, Hub, serve_socket

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_UPLOAD_SIZE = 100 * 1024 * 1024


def _is_loopback(host: str) -> bool:
    host = host.rsplit(":", 1)[0].strip("[]") if host.count(":") <= 1 or "]" in host else host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Simulator:
    """One simulated ComfyUI server; `restart()` swaps the process state."""

    def __init__(self, cfg: SimConfig | None = None, data_dir: str | None = None) -> None:
        self.cfg = cfg or SimConfig()
        self.dirs = DataDirs.create(data_dir)
        self.hub = Hub()
        self.vdata = version_data(self.cfg.version)
        self.model_files = model_files(self.cfg.version, self.cfg.models)
        self.info = object_info(self.cfg.version, self.model_files)
        self.impls = {k: v for k, v in registry().items() if k in self.info}
        self.restarts = 0
        self.down_until = 0.0
        self.started = time.monotonic()
        self.runner: web.AppRunner | None = None
        self.number = 0
        self.queue = PromptQueue(self._queue_updated)
        self.executor = Executor(self.cfg, self.hub, self.dirs, self.queue, self.info, self.impls)

    # -- process state -------------------------------------------------------------------
    def _queue_updated(self) -> None:
        self.hub.send("status", {"status": self.queue_info()})

    def queue_info(self) -> dict[str, Any]:
        """GET /prompt body and the status frame payload."""
        return {"exec_info": {"queue_remaining": self.queue.remaining()}}

    def restart(self, down_seconds: float = 0.0) -> None:
        """Lose sockets, queue, running job, history, cache and the prompt counter."""
        self.executor.stop()
        self.hub.drop_all()
        self.number = 0
        self.queue = PromptQueue(self._queue_updated)
        self.executor = Executor(self.cfg, self.hub, self.dirs, self.queue, self.info, self.impls)
        self.dirs.wipe_temp()
        self.restarts += 1
        self.down_until = time.monotonic() + max(0.0, down_seconds)
        self.executor.start()

    def abort_http_connections(self, keep: Any = None) -> None:
        """Close idle keep-alive HTTP connections, as a dying process would."""
        server = self.runner.server if self.runner else None
        for proto in list(getattr(server, "connections", []) if server else []):
            transport = getattr(proto, "transport", None)
            if transport is not None and transport is not keep:
                transport.abort()

    # -- app -----------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        """aiohttp application with every ComfyUI route (and its /api alias)."""
        from .control import add_control_routes

        app = web.Application(client_max_size=MAX_UPLOAD_SIZE, middlewares=[self._middleware])
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/ws", self.ws_handler),
            ("GET", "/embeddings", self.embeddings),
            ("GET", "/models", self.models),
            ("GET", "/models/{folder}", self.models_folder),
            ("POST", "/upload/image", self.upload_image),
            ("GET", "/view", self.view),
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/features", self.features),
            ("GET", "/prompt", self.get_prompt),
            ("GET", "/object_info", self.object_info),
            ("GET", "/object_info/{node_class}", self.object_info_node),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_item),
            ("GET", "/queue", self.get_queue),
            ("POST", "/prompt", self.post_prompt),
            ("POST", "/queue", self.post_queue),
            ("POST", "/interrupt", self.post_interrupt),
            ("POST", "/free", self.post_free),
            ("POST", "/history", self.post_history),
        ]
        if self.cfg.is_v027:
            routes += [
                ("GET", "/node_replacements", self.node_replacements),
                ("GET", "/global_subgraphs", self.global_subgraphs),
                ("GET", "/api/jobs", self.jobs_list),
                ("GET", "/api/jobs/{job_id}", self.jobs_get),
                ("POST", "/api/jobs/cancel", self.jobs_cancel_batch),
                ("POST", "/api/jobs/{job_id}/cancel", self.jobs_cancel),
                ("GET", "/api/assets", self.assets_disabled),
            ]
        for method, path, handler in routes:
            for full in ("/api" + path, path):
                app.router.add_route(method, full, handler)
        add_control_routes(app, self)

        async def start_workers(_: web.Application) -> None:
            self.executor.start()

        async def stop_workers(_: web.Application) -> None:
            self.executor.stop()
            self.hub.drop_all()

        app.on_startup.append(start_workers)
        app.on_shutdown.append(stop_workers)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sim/"):
            return await handler(request)
        if self.down_until > time.monotonic():
            return web.Response(status=503)
        plain = path[4:] if path.startswith("/api/") else path
        delay = self.cfg.http_delay_ms.get(plain, self.cfg.http_delay_ms.get(path, 0.0))
        if delay:
            await asyncio.sleep(delay / 1000.0)
        for rule in self.cfg.fail:
            if rule.count > 0 and rule.path in (plain, path):
                rule.count -= 1
                self.cfg.fail = [r for r in self.cfg.fail if r.count > 0]
                return web.Response(status=rule.status, text=rule.body or None)
        for cut in self.cfg.cut:
            if cut.count > 0 and cut.path in (plain, path):
                cut.count -= 1
                self.cfg.cut = [r for r in self.cfg.cut if r.count > 0]
                return await self._cut_answer(request, await handler(request), cut.body_bytes)
        if isinstance(request.match_info.http_exception, web.HTTPNotFound):
            # ComfyUI's catch-all static route answers unknown paths with an empty chunked 404.
            resp = web.StreamResponse(status=404)
            resp.content_type = "application/octet-stream"
            await resp.prepare(request)
            await resp.write_eof()
            return resp
        if self.cfg.is_v027 and request.headers.get("Sec-Fetch-Site") == "cross-site":
            return web.Response(status=403)
        origin = request.headers.get("Origin")
        host = request.headers.get("Host", "")
        if origin and _is_loopback(host) and urlparse(origin).netloc.lower() != host.lower():
            return web.Response(status=403)
        return await handler(request)

    async def _cut_answer(
        self, request: web.Request, response: web.StreamResponse, body_bytes: int | None
    ) -> web.StreamResponse:
        """Send none of `response`, or its headers and `body_bytes` of its body, then hang up."""
        transport = request.transport
        assert transport is not None
        if body_bytes is not None:
            body = response.body if isinstance(response, web.Response) else None
            if not isinstance(body, bytes):
                raise web.HTTPInternalServerError(text="cut rules cut in-memory answers only")
            head = [f"HTTP/1.1 {response.status} {response.reason}"]
            own = ("Content-Length", "Content-Type")
            head += [f"{k}: {v}" for k, v in response.headers.items() if k not in own]
            head += [f"Content-Type: {response.content_type}", f"Content-Length: {len(body)}"]
            transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + body[:body_bytes])
        transport.close()
        # The connection is gone; aiohttp drops whatever is returned now.
        raise asyncio.CancelledError

    # -- websocket -----------------------------------------------------------------------
    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        sid = request.rel_url.query.get("clientId", "") or uuid.uuid4().hex

        def greet(conn: Connection) -> None:
            self.hub.send_to(conn, "status", {"status": self.queue_info(), "sid": sid})
            node = self.executor.last_node.get(sid)
            if node is not None:
                # A reconnecting client of the running prompt learns the current node.
                self.hub.send_to(conn, "executing", {"node": node})

        return await serve_socket(request, self.hub, sid, greet, self.vdata["features"])

    # -- simple GETs ---------------------------------------------------------------------
    async def embeddings(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(self.vdata["models"])

    async def models_folder(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in self.vdata["models"]:
            return web.Response(status=404)
        return web.json_response(self.model_files.get(folder, []))

    async def system_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.vdata["system_stats"])

    async def features(self, request: web.Request) -> web.Response:
        return web.json_response(self.vdata["features"])

    async def get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response(self.queue_info())

    async def node_replacements(self, request: web.Request) -> web.Response:
        return web.json_response(self.vdata.get("node_replacements") or {})

    async def global_subgraphs(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def assets_disabled(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "error": {
                    "code": "SERVICE_DISABLED",
                    "message": "Assets system is disabled. Start the server with "
                    "--enable-assets to use this feature.",
                    "details": {},
                }
            },
            status=503,
        )

    def _node_info(self, name: str) -> dict[str, Any]:
        info = self.info[name]
        if name == "LoadImage":
            info = copy.deepcopy(info)
            info["input"]["required"]["image"][0] = self.dirs.input_images()
        return info

    async def object_info(self, request: web.Request) -> web.Response:
        return web.json_response({name: self._node_info(name) for name in self.info})

    async def object_info_node(self, request: web.Request) -> web.Response:
        name = request.match_info["node_class"]
        return web.json_response({name: self._node_info(name)} if name in self.info else {})

    async def view(self, request: web.Request) -> web.StreamResponse:
        return await files.view(request, self.dirs, self.cfg.is_v027)

    async def upload_image(self, request: web.Request) -> web.Response:
        return await files.upload_image(request, self.dirs)

    # -- queue and history ---------------------------------------------------------------
    async def get_queue(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "queue_running": [i.public() for i in self.queue.running.values()],
                "queue_pending": [i.public() for i in self.queue.pending()],
            }
        )

    async def get_history(self, request: web.Request) -> web.Response:
        q = request.rel_url.query
        max_items = int(q["max_items"]) if "max_items" in q else None
        offset = int(q["offset"]) if "offset" in q else -1
        return web.json_response(self.queue.get_history(max_items=max_items, offset=offset))

    async def get_history_item(self, request: web.Request) -> web.Response:
        return web.json_response(self.queue.get_history(prompt_id=request.match_info["prompt_id"]))

    async def post_queue(self, request: web.Request) -> web.Response:
        data = await request.json()
        if "clear" in data and data["clear"]:
            self.queue.wipe()
        if "delete" in data:
            for prompt_id in data["delete"]:
                self.queue.delete(prompt_id)
        return web.Response(status=200)

    async def post_history(self, request: web.Request) -> web.Response:
        data = await request.json()
        if "clear" in data and data["clear"]:
            self.queue.history.clear()
        if "delete" in data:
            for prompt_id in data["delete"]:
                self.queue.history.pop(prompt_id, None)
        return web.Response(status=200)

    async def post_interrupt(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except json.JSONDecodeError:
            data = {}
        prompt_id = data.get("prompt_id")
        # A targeted interrupt only acts if that prompt is running; otherwise it is ignored.
        self.executor.interrupt(prompt_id or None)
        return web.Response(status=200)

    async def post_free(self, request: web.Request) -> web.Response:
        data = await request.json()
        unload = data.get("unload_models", False)
        free = data.get("free_memory", False)
        if unload:
            self.queue.set_flag("unload_models", unload)
        if free:
            self.queue.set_flag("free_memory", free)
        return web.Response(status=200)

    # -- POST /prompt --------------------------------------------------------------------
    def _validator(self) -> Validator:
        return Validator(
            self.info,
            self.cfg.is_v027,
            self.vdata["validation_traceback"],
            image_exists_in(self.dirs),
            self.cfg.output_order,
        )

    async def post_prompt(self, request: web.Request) -> web.Response:
        data = await request.json()
        if "number" in data:
            number: float = float(data["number"])
        else:
            number = self.number
            if "front" in data and data["front"]:
                number = -number
            self.number += 1
        if "prompt" not in data:
            error = {
                "type": "no_prompt",
                "message": "No prompt provided",
                "details": "No prompt provided",
                "extra_info": {},
            }
            return web.json_response({"error": error, "node_errors": {}}, status=400)
        prompt = data["prompt"]
        v027 = self.cfg.is_v027
        if v027:
            raw_id = data.get("prompt_id")
            if raw_id is not None and not jobs.is_canonical_uuid(raw_id):
                return web.json_response(
                    {
                        "error": {
                            "type": "invalid_prompt_id",
                            "message": "prompt_id must be a valid UUID",
                            "details": "prompt_id must be a UUID string in canonical "
                            "lowercase hyphenated form; omit it to let the server generate one",
                            "extra_info": {},
                        },
                        "node_errors": {},
                    },
                    status=400,
                )
            prompt_id = raw_id if raw_id is not None else str(uuid.uuid4())
        else:
            prompt_id = str(data.get("prompt_id", uuid.uuid4()))
        partial = data["partial_execution_targets"] if "partial_execution_targets" in data else None
        result = self._validator().validate(prompt, partial)
        extra_data = data["extra_data"] if "extra_data" in data else {}
        if "client_id" in data:
            extra_data["client_id"] = data["client_id"]
        sensitive: dict[str, Any] = {}
        if v027:
            source = request.headers.get("Comfy-Usage-Source")
            if source and "comfy_usage_source" not in extra_data:
                extra_data["comfy_usage_source"] = source
            extra_data["create_time"] = now_ms()
            for key in SENSITIVE_EXTRA_DATA_KEYS:
                if key in extra_data:
                    sensitive[key] = extra_data.pop(key)
        if not result.ok:
            return web.json_response(
                {"error": result.error, "node_errors": result.node_errors}, status=400
            )
        item = QueueItem(number, prompt_id, prompt, extra_data, result.outputs, sensitive)
        self.queue.put(item)
        return web.json_response(
            {"prompt_id": prompt_id, "number": number, "node_errors": result.node_errors}
        )

    # -- jobs (0.27) ---------------------------------------------------------------------
    async def jobs_list(self, request: web.Request) -> web.Response:
        return jobs.list_jobs(request, self.queue)

    async def jobs_get(self, request: web.Request) -> web.Response:
        return jobs.get_job(request, self.queue)

    async def jobs_cancel(self, request: web.Request) -> web.Response:
        hit = jobs.cancel_one(request.match_info["job_id"], self.queue, self.executor.interrupt)
        return web.json_response({"cancelled": hit})

    async def jobs_cancel_batch(self, request: web.Request) -> web.Response:
        return await jobs.cancel_batch(request, self.queue, self.executor.interrupt)
