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
from ..errors import AnswerLost, ClientGone, GatewayError, GenerationTimeout
from ..outputs import OutputCopier
from ..storage.local import LocalDiskStore
from .client import ComfyClient
from .protocol import Outcome
from .waits import FrameListener, PromptWait
from .watcher import ComfyWatcher

log = logging.getLogger(__name__)

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
    ) -> None:
        self.name = name
        self.client = client
        self.watcher = watcher
        self.copier = copier
        self.timeout_label = timeout_label
        self.cancel_on_timeout = cancel_on_timeout
        self.cancelled = BoundedSet()

    @classmethod
    def build(cls, settings: Settings, local: LocalDiskStore) -> ComfyBackend:
        """The one server named by COMFYUI_URL, with its timeouts and socket settings."""
        comfy = settings.comfy
        client = ComfyClient(
            comfy.url,
            connect_timeout=comfy.connect_timeout,
            read_timeout=comfy.read_timeout,
            retries=comfy.retries,
        )
        watcher = ComfyWatcher(
            client,
            ping_interval=comfy.ws_ping_interval,
            stall_timeout=comfy.ws_stall_timeout,
            reconnect_max_delay=comfy.ws_reconnect_max_delay,
            reconcile_interval=comfy.reconcile_interval,
        )
        copier = OutputCopier(client, local, comfy.output_dir, comfy.cleanup_outputs)
        return cls(
            client,
            watcher,
            copier,
            timeout_label=settings.service.generation_timeout,
            cancel_on_timeout=settings.service.cancel_on_timeout,
        )

    @property
    def client_id(self) -> str:
        """The WebSocket client id prompts of this process are submitted under."""
        return self.watcher.client_id

    def start(self) -> None:
        """Open the WebSocket in this process."""
        self.watcher.ensure_started()

    def close(self) -> None:
        """Stop watching and close connections."""
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
