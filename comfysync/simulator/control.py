"""Fault-injection and introspection API under /_sim/ (not a ComfyUI route)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .server import Simulator


async def _body(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    if not text.strip():
        return {}
    data = await request.json()
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return data


def stats(sim: Simulator) -> dict[str, Any]:
    """Counters for benchmarks and tests."""
    t = os.times()
    return {
        "version": sim.cfg.version,
        "ws_accepted_total": sim.hub.accepted_total,
        "ws_open": len(sim.hub.all_connections),
        "ws_registered": len(sim.hub.sockets),
        "client_ids_seen": len(sim.hub.client_ids_seen),
        "frames_sent": sim.hub.frames_sent,
        "prompts_accepted": sim.queue.accepted,
        "prompts_executed": sim.queue.executed,
        "queue_pending": len(sim.queue.pending()),
        "queue_running": len(sim.queue.running),
        "queue_depth_max": sim.queue.depth_max,
        "history_size": len(sim.queue.history),
        "restarts": sim.restarts,
        "down": sim.down_until > time.monotonic(),
        "cpu_time_s": round(t.user + t.system, 3),
        "uptime_s": round(time.monotonic() - sim.started, 3),
        "pid": os.getpid(),
    }


def add_control_routes(app: web.Application, sim: Simulator) -> None:
    """Register the /_sim/ routes on `app`."""

    async def drop_sockets(request: web.Request) -> web.Response:
        return web.json_response({"dropped": sim.hub.drop_all()})

    async def stall(request: web.Request) -> web.Response:
        body = await _body(request)
        seconds = float(body.get("seconds", 5.0))
        return web.json_response({"stalled": sim.hub.stall_all(seconds), "seconds": seconds})

    async def unstall(request: web.Request) -> web.Response:
        sim.hub.unstall_all()
        return web.json_response({"ok": True})

    async def restart(request: web.Request) -> web.Response:
        body = await _body(request)
        down = float(body.get("down_seconds", 0.0))
        sim.restart(down)
        # Idle keep-alive connections die with the "process", after this reply is written.
        keep = request.transport
        asyncio.get_running_loop().call_later(0.05, sim.abort_http_connections, keep)
        return web.json_response({"restarted": True, "down_seconds": down})

    async def get_config(request: web.Request) -> web.Response:
        return web.json_response(sim.cfg.snapshot())

    async def post_config(request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            sim.cfg.apply(body)
        except (KeyError, TypeError, ValueError) as ex:
            return web.json_response({"error": f"bad config: {ex!r}"}, status=400)
        sim.executor.start()
        return web.json_response(sim.cfg.snapshot())

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(stats(sim))

    app.router.add_post("/_sim/drop_sockets", drop_sockets)
    app.router.add_post("/_sim/stall", stall)
    app.router.add_post("/_sim/unstall", unstall)
    app.router.add_post("/_sim/restart", restart)
    app.router.add_get("/_sim/config", get_config)
    app.router.add_post("/_sim/config", post_config)
    app.router.add_get("/_sim/stats", get_stats)
