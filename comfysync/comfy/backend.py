"""One ComfyUI server as the gateway uses it: client, watcher and output copier together.

`ComfyBackend.run_prompt` owns a prompt's whole life on its server: register
the wait, submit, wait for the frames, fall back to the queue and history when
frames were missed, cancel when the caller gives up, all bounded by one
deadline. Nothing above this module touches a `PromptWait`.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event

from ..config import Settings
from ..config.fleet import ComfyServer
from ..errors import AnswerLost, ClientGone, GatewayError, GenerationTimeout
from ..outputs import OutputCopier
from ..storage.local import LocalDiskStore
from .client import ComfyClient
from .health import ServerHealth
from .protocol import Outcome
from .waits import FrameListener, PromptWait
from .watcher import ComfyWatcher

log = logging.getLogger(__name__)

# Weight of the newest job in a server's mean time per job.
_EWMA = 0.2

# Between `executing null` and the history entry ComfyUI writes right after it,
# the prompt is briefly in neither place that says how it ended.
_HISTORY_RETRY_FIRST = 0.05
_HISTORY_RETRY_MAX = 1.0


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


class ComfyBackend:
    """A ComfyUI server: its HTTP client, this process' watcher of it, its output copier."""

    def __init__(
        self,
        client: ComfyClient,
        watcher: ComfyWatcher,
        copier: OutputCopier,
        *,
        name: str = "default",
        timeout_label: float | None = None,
        cancel_on_timeout: bool = False,
        limit: int = 0,
        tags: frozenset[str] = frozenset(),
        failover_grace: float = 30.0,
    ) -> None:
        self.name = name
        self.client = client
        self.watcher = watcher
        self.copier = copier
        self.timeout_label = timeout_label
        self.cancel_on_timeout = cancel_on_timeout
        self.limit = limit  # prompts it may hold at once, over every worker; 0: no limit
        self.tags = tags
        self.health = ServerHealth(name, client, watcher, grace=failover_grace)
        self.cancelled = BoundedSet()
        # What this process saw it do, for routing and /api/servers.
        self.claimed = 0  # runs this process dispatched to it that have not ended there
        self.collecting = 0  # ended there, outputs being copied: still in flight in the store
        self.jobs_done = 0
        self.mean_seconds: float | None = None  # per job, submit to end
        self.workflow_seconds: OrderedDict[str, float] = OrderedDict()
        self.last_models: frozenset[str] = frozenset()

    @classmethod
    def build(cls, settings: Settings, local: LocalDiskStore, server: ComfyServer) -> ComfyBackend:
        """One server of the fleet, with the timeouts and socket settings all servers share."""
        comfy = settings.comfy
        client = ComfyClient(
            server.url,
            connect_timeout=comfy.connect_timeout,
            read_timeout=comfy.read_timeout,
            retries=comfy.retries,
            headers=server.headers,
        )
        watcher = ComfyWatcher(
            client,
            ping_interval=comfy.ws_ping_interval,
            stall_timeout=comfy.ws_stall_timeout,
            reconnect_max_delay=comfy.ws_reconnect_max_delay,
            reconcile_interval=comfy.reconcile_interval,
            name=server.name,
        )
        copier = OutputCopier(client, local, comfy.output_dir, comfy.cleanup_outputs)
        return cls(
            client,
            watcher,
            copier,
            name=server.name,
            timeout_label=settings.service.generation_timeout,
            cancel_on_timeout=settings.service.cancel_on_timeout,
            limit=comfy.limit(server),
            tags=server.tags,
            failover_grace=comfy.failover_grace,
        )

    @property
    def store_limit(self) -> int:
        """The in-flight runs the store may count on it when claiming (0: no limit).

        Runs of ours whose prompt ComfyUI has finished no longer hold a place
        there, though the store counts them until their outputs are recorded.
        """
        return self.limit + self.collecting if self.limit > 0 else 0

    @property
    def up(self) -> bool:
        """Whether this process may send it work."""
        return self.health.up

    def job_seconds(self, workflow: str | None) -> float | None:
        """Its recent time per job for this workflow, else for any."""
        if workflow is not None and workflow in self.workflow_seconds:
            return self.workflow_seconds[workflow]
        return self.mean_seconds

    def job_done(self, seconds: float, workflow: str | None, models: frozenset[str]) -> None:
        """Record a finished job: its time, and the models it left loaded."""
        self.jobs_done += 1
        self.mean_seconds = _ewma(self.mean_seconds, seconds)
        if workflow is not None:
            self.workflow_seconds[workflow] = _ewma(self.workflow_seconds.get(workflow), seconds)
            self.workflow_seconds.move_to_end(workflow)
            while len(self.workflow_seconds) > 256:
                self.workflow_seconds.popitem(last=False)
        if models:
            self.last_models = models

    def status(self) -> dict[str, Any]:
        """What `/api/servers` shows of it (never its address)."""
        return {
            "name": self.name,
            "up": self.up,
            "connected": self.watcher.connected,
            "tags": sorted(self.tags),
            "max_inflight": self.limit,
            "in_flight": self.claimed,
            "queue_remaining": self.watcher.queue_remaining,
            "jobs_done": self.jobs_done,
            "mean_job_seconds": None if self.mean_seconds is None else round(self.mean_seconds, 3),
            "last_error": self.health.last_error,
        }

    @property
    def client_id(self) -> str:
        """The WebSocket client id prompts of this process are submitted under."""
        return self.watcher.client_id

    def start(self) -> None:
        """Open the WebSocket in this process and watch its health."""
        self.watcher.ensure_started()
        self.health.start()

    def close(self) -> None:
        """Stop watching and close connections."""
        self.health.stop()
        self.watcher.stop()
        self.client.close()

    # -- a prompt's life ------------------------------------------------------

    def submit(self, graph: dict[str, Any], prompt_id: str) -> dict[str, Any]:
        """Queue a graph under this process' client id without waiting; ComfyUI's reply."""
        return self.client.submit(graph, prompt_id, self.client_id)

    def run_prompt(
        self,
        graph: dict[str, Any] | None,
        prompt_id: str,
        deadline: float,
        *,
        abandon: Event | None = None,
        on_frame: FrameListener | None = None,
        on_submitted: Callable[[], None] | None = None,
    ) -> Outcome:
        """Submit `graph` as `prompt_id` and wait for how it ended, until `deadline` (monotonic).

        With `graph` None the prompt was submitted earlier (by a process now
        gone): it is watched, and checked against the queue and history at once.
        Setting `abandon` stops the wait and cancels the prompt in ComfyUI.
        `on_submitted` is called once ComfyUI holds the prompt, and `on_frame`
        hears every WebSocket message about it.

        :raises GatewayError: ComfyUI refused or failed the prompt, lost it, or
            the deadline passed; always with the prompt id.
        """
        wait = self.watcher.register(prompt_id, gap=graph is None, listener=on_frame)

        def on_abandon(_event: Any) -> None:
            wait.abandon()

        if abandon is not None:
            abandon.rawlink(on_abandon)
        try:
            unsure = graph is None  # submitted before: ComfyUI says how it stands
            if graph is not None:
                try:
                    self.client.submit(graph, prompt_id, self.client_id)
                except AnswerLost as err:
                    # ComfyUI may hold the prompt: never send it twice. Its queue and
                    # history say; a prompt it does not know is lost and retried.
                    log.warning("prompt %s: %s; asking ComfyUI whether it has it", prompt_id, err)
                    wait.gap = unsure = True
            wait.submitted = True
            if on_submitted is not None:
                on_submitted()
            if unsure:
                wait.done.set()  # nothing to wait for before asking ComfyUI
            return self._await(wait, deadline)
        finally:
            self.watcher.unregister(wait)
            if abandon is not None:
                abandon.unlink(on_abandon)

    def _await(self, wait: PromptWait, deadline: float) -> Outcome:
        while True:
            wait.done.wait(timeout=max(0.0, deadline - time.monotonic()))
            if not wait.done.is_set():
                self._timed_out(wait)
            if wait.client_gone:
                self.cancel(wait.prompt_id)
                raise ClientGone(prompt_id=wait.prompt_id)
            if wait.error is not None:
                raise wait.error
            if wait.outcome is not None:
                return wait.outcome
            self._settle_from_comfyui(wait, deadline)

    def _settle_from_comfyui(self, wait: PromptWait, deadline: float) -> None:
        """Frames were missed: ComfyUI's queue and history have the final word."""
        delay = _HISTORY_RETRY_FIRST
        while not wait.settled and not wait.client_gone:
            try:
                self.watcher.reconcile([wait])
            except GatewayError as err:
                log.debug("prompt %s: could not check ComfyUI: %s", wait.prompt_id, err)
            if wait.settled or time.monotonic() + delay >= deadline:
                break
            gevent.sleep(delay)  # still queued or running: look again
            delay = min(delay * 2, _HISTORY_RETRY_MAX)
        if not wait.settled and not wait.client_gone:
            self._timed_out(wait)

    def _timed_out(self, wait: PromptWait) -> None:
        if self.cancel_on_timeout:
            self.cancel(wait.prompt_id)
        after = f"after {self.timeout_label:g} s" if self.timeout_label else "in time"
        raise GenerationTimeout(
            f"No result {after}; the prompt keeps running, fetch it later by prompt_id",
            prompt_id=wait.prompt_id,
        )

    def cancel(self, prompt_id: str) -> bool:
        """Remove the prompt from ComfyUI's queue or interrupt it; False when that failed."""
        try:
            self.client.cancel(prompt_id)
        except GatewayError as err:
            log.warning("could not cancel prompt %s: %s", prompt_id, err)
            return False
        self.cancelled.add(prompt_id)
        log.info("cancelled prompt %s in ComfyUI", prompt_id)
        return True


def _ewma(mean: float | None, value: float) -> float:
    return value if mean is None else mean + _EWMA * (value - mean)
