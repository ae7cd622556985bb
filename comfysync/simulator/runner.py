"""Start the simulator: as an asyncio site, or in a background thread for tests."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from typing import Any

from aiohttp import web

from .config import SimConfig
from .server import Simulator


async def start_site(
    sim: Simulator, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Serve `sim` on host:port (0 = free port); return the runner and the bound port."""
    runner = web.AppRunner(sim.build_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sim.runner = runner
    sockets = getattr(site._server, "sockets", None) or []  # noqa: SLF001 - only way to read port 0
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound


async def until_signalled() -> None:
    """Wait for SIGINT or SIGTERM (a simulator process's way to stop cleanly)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and await leftover tasks so nothing is destroyed while pending."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks(loop) if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class SimulatorThread:
    """Run a Simulator on its own event loop in a daemon thread.

    >>> with SimulatorThread(version="0.27", parallel=1) as sim:
    ...     requests.get(sim.url + "/queue")
    """

    def __init__(
        self,
        version: str = "0.3.64",
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: str | None = None,
        **settings: Any,
    ) -> None:
        self.config = SimConfig(version=version)
        job = settings.pop("job_duration_ms", None)
        self.config.apply(settings)
        if job is not None:
            self.config.apply({"job_duration_ms": job})
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.sim: Simulator | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """http://host:port of the running simulator."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """ws://host:port/ws."""
        return f"ws://{self.host}:{self.port}/ws"

    def start(self) -> SimulatorThread:
        """Start the thread and wait until the port is open."""
        self._thread = threading.Thread(target=self._main, name="comfyui-simulator", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError("simulator failed to start") from self._error
        return self

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            self.sim = Simulator(self.config, self.data_dir)
            self._runner, self.port = loop.run_until_complete(
                start_site(self.sim, self.host, self.port)
            )
        except BaseException as ex:  # noqa: BLE001 - reported to the starting thread
            self._error = ex
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(_cancel_all(loop))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def call(self, fn: Any, *args: Any) -> Any:
        """Run fn(*args) on the simulator's loop and return its result."""
        assert self.loop is not None

        async def wrapper() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(30)

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self.loop is not None and self._thread is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
        if self.sim is not None:
            self.sim.dirs.cleanup()

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
