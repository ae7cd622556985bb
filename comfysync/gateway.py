"""The gateway's long-lived parts, built once per process and kept on the app."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

import gevent

from .comfy.client import ComfyClient
from .comfy.watcher import ComfyWatcher
from .config import Settings
from .errors import ShuttingDown
from .greenlets import Background
from .inputs import ImageFetcher, InputSettings
from .outputs import OutputCopier
from .storage import (
    LocalDiskStore,
    RetentionPruner,
    build_remote_store,
    load_retention_settings,
    load_upload_settings,
)
from .workflows.store import WorkflowStore

log = logging.getLogger(__name__)


@dataclass
class ComfyServer:
    """One ComfyUI server: its HTTP client and this process' watcher of it."""

    client: ComfyClient
    watcher: ComfyWatcher


class BoundedSet:
    """Remembers the last `size` items (prompt ids we cancelled ourselves)."""

    def __init__(self, size: int = 10000) -> None:
        self.size = size
        self._items: OrderedDict[str, None] = OrderedDict()

    def add(self, item: str) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        return item in self._items


class Gateway:
    """Settings, the ComfyUI server(s), workflows and storage, plus shutdown state."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        client = ComfyClient(
            settings.comfyui_url,
            connect_timeout=settings.comfyui_connect_timeout,
            read_timeout=settings.comfyui_read_timeout,
            retries=settings.comfyui_retries,
        )
        watcher = ComfyWatcher(
            client,
            ping_interval=settings.ws_ping_interval,
            stall_timeout=settings.ws_stall_timeout,
            reconnect_max_delay=settings.ws_reconnect_max_delay,
            reconcile_interval=settings.reconcile_interval,
        )
        # One server today; routing over a fleet picks among several here.
        self.servers = [ComfyServer(client, watcher)]
        self.workflows = WorkflowStore(settings.workflows_dir)
        self.input_settings = InputSettings.from_env(settings.env)
        self.fetcher = ImageFetcher(self.input_settings)
        self.local = LocalDiskStore(settings.output_dir, settings.server_base_url)
        self.remote = build_remote_store(settings.env)
        self.uploads = load_upload_settings(settings.env)
        self.pruner = RetentionPruner(settings.output_dir, load_retention_settings(settings.env))
        self.copier = OutputCopier(
            client, self.local, settings.comfyui_output_dir, settings.comfyui_cleanup_outputs
        )
        self.cancelled = BoundedSet()
        self.shutting_down = False
        self.background = Background("gateway")

    def start(self) -> None:
        """Open the WebSocket(s) in this process, before the first request needs them."""
        for server in self.servers:
            server.watcher.ensure_started()
        self.pruner.start()

    def server(self) -> ComfyServer:
        """The ComfyUI server for the next request."""
        return self.servers[0]

    def begin_shutdown(self, grace: float) -> None:
        """Stop taking work; after `grace` seconds answer every held request with 503."""
        if self.shutting_down:
            return
        self.shutting_down = True
        log.info("shutting down: held requests have %.0f s to finish", grace)
        self.background.spawn(self._release_waits, grace, name="shutdown")

    def _release_waits(self, grace: float) -> None:
        gevent.sleep(grace)
        for server in self.servers:
            for wait in list(server.watcher.waits.values()):
                wait.fail(
                    ShuttingDown(
                        "The gateway is restarting; the prompt keeps running in ComfyUI, "
                        "fetch it later by prompt_id",
                        prompt_id=wait.prompt_id,
                    )
                )

    def close(self) -> None:
        """Stop background work and close connections."""
        self.background.kill()
        self.pruner.stop()
        if self.remote is not None:
            self.remote.close()
        for server in self.servers:
            server.watcher.stop()
            server.client.close()
