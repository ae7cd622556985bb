"""The gateway's long-lived parts, built once per process and kept on the app."""

from __future__ import annotations

import logging

import gevent
from gevent.event import Event

from . import routing
from .comfy.backend import ComfyBackend
from .config import Settings
from .dispatcher import Dispatcher
from .greenlets import Background
from .inputs import ImageFetcher
from .keys import plain_keys
from .ratelimit import build_limiter
from .runs.factory import build_run_store
from .storage import LocalDiskStore, RetentionPruner, build_remote_store
from .storage.signing import UrlSigner
from .warmup import Warmup
from .webhooks.sender import WebhookSender
from .workflows.store import WorkflowStore

log = logging.getLogger(__name__)


class Gateway:
    """Settings, the ComfyUI server(s), workflows and storage, plus shutdown state."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = plain_keys(settings.service.api_keys) + settings.service.named_keys
        self.limiter = build_limiter(settings.runs.redis_url)
        service = settings.service
        signer = (
            UrlSigner(service.local_url_secret.encode(), service.local_url_ttl)
            if service.local_url_secret
            else None
        )
        self.local = LocalDiskStore(
            service.output_dir,
            service.server_base_url,
            url_prefix=service.output_url_prefix,
            signer=signer,
        )
        self.backends = [
            ComfyBackend.build(settings, self.local, server) for server in settings.comfy.servers
        ]
        self._by_name = {backend.name: backend for backend in self.backends}
        self.workflows = WorkflowStore(settings.service.workflows_dir)
        self.input_settings = settings.inputs
        self.fetcher = ImageFetcher(self.input_settings)
        self.remote = build_remote_store(settings.storage)
        self.uploads = settings.uploads
        self.pruner = RetentionPruner(settings.service.output_dir, settings.retention)
        self.runs = build_run_store(settings.runs.data_dir, settings.runs.redis_url)
        self.dispatcher = Dispatcher(self)
        self.webhooks = WebhookSender(self.runs, settings.webhooks)
        self.shutting_down = False
        self.released = Event()  # set when held requests are answered during shutdown
        self.background = Background("gateway")
        self.warmup = Warmup(self)

    def start(self) -> None:
        """Open the WebSocket(s) in this process, before the first request needs them; warm up."""
        for backend in self.backends:
            backend.start()
        self.dispatcher.start()
        self.webhooks.start()
        self.pruner.start()
        self.warmup.start()

    def backend(self, name: str | None = None) -> ComfyBackend:
        """The ComfyUI server of that name; the first (the only one, without a fleet) for None.

        A name no longer configured (a run recorded before the fleet changed)
        gets the first server, which then says it does not know the prompt.
        """
        if name is None:
            return self.backends[0]
        return self._by_name.get(name) or self.backends[0]

    def has_server(self, name: str) -> bool:
        """Whether `name` is a configured server."""
        return name in self._by_name

    def home(self, route: dict | None = None) -> ComfyBackend:
        """Where a new run's input images go: the server it will most likely run on."""
        pinned = (route or {}).get("server")
        if pinned is not None:
            return self.backend(pinned)
        best = routing.ranked(self.backends, route)
        if best:
            return best[0]
        able = [b for b in self.backends if routing.admits(route, b.name, b.tags)]
        return (able or self.backends)[0]

    def begin_shutdown(self, grace: float) -> None:
        """Stop taking work; after `grace` seconds answer every held request with 503."""
        if self.shutting_down:
            return
        self.shutting_down = True
        self.dispatcher.pause()
        log.info("shutting down: held requests have %.0f s to finish", grace)
        self.background.spawn(self._release_waits, grace, name="shutdown")

    def _release_waits(self, grace: float) -> None:
        gevent.sleep(grace)
        # Held requests answer 503 with their run id; the runs themselves are
        # taken over by whichever worker outlives this one.
        self.released.set()
        self.runs.waiters.notify_all()

    def close(self) -> None:
        """Stop background work, give up our runs to the other workers, close connections."""
        self.background.kill()
        self.warmup.close()
        self.dispatcher.stop()
        self.webhooks.stop()
        self.runs.close()
        self.pruner.stop()
        if self.remote is not None:
            self.remote.close()
        for backend in self.backends:
            backend.close()
