"""The prompt queue and history store: everything a ComfyUI restart loses."""

from __future__ import annotations

import asyncio
import copy
import heapq
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAXIMUM_HISTORY_SIZE = 10000
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")


@dataclass(eq=False)
class QueueItem:
    """One queued prompt: the public 5-tuple plus data kept off the wire."""

    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    sensitive: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False

    def public(self) -> list[Any]:
        """[number, prompt_id, prompt, extra_data, outputs_to_execute] as /queue shows it."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class PromptQueue:
    """ComfyUI's heap-ordered queue, running set, history and worker flags."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self._heap: list[tuple[float, str, int, QueueItem]] = []
        self._seq = itertools.count()
        self.running: dict[int, QueueItem] = {}
        self._task_counter = itertools.count()
        self.history: dict[str, dict[str, Any]] = {}
        self.flags: dict[str, Any] = {}
        # Idle workers, each waiting on its own future: a new item wakes exactly
        # one, as ComfyUI's Condition.notify() does. (One shared Event woke all
        # of them on every put: thousands of wake-ups per prompt in parallel mode.)
        self._idle: deque[asyncio.Future[None]] = deque()
        self.accepted = 0
        self.executed = 0
        self.depth_max = 0  # the most prompts held at once (pending + running), for tests

    # -- queue -----------------------------------------------------------------------------
    def put(self, item: QueueItem) -> None:
        """Queue an item and broadcast the new queue size."""
        # (number, prompt_id) is how ComfyUI's heap of tuples compares items.
        heapq.heappush(self._heap, (item.number, item.prompt_id, next(self._seq), item))
        self.accepted += 1
        self.depth_max = max(self.depth_max, len(self._heap) + len(self.running))
        self._on_change()
        self._wake_one()

    def _wake_one(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def get(self) -> tuple[int, QueueItem] | None:
        """Wait for the next item; None when woken only for flags (e.g. /free)."""
        while not self._heap:
            if self.flags:
                return None
            waiter = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass on a wake-up this worker can no longer use
                raise
        item = heapq.heappop(self._heap)[3]
        task_id = next(self._task_counter)
        self.running[task_id] = item
        self._on_change()
        return task_id, item

    def task_done(self, task_id: int, entry: dict[str, Any]) -> None:
        """Move a finished item to history and broadcast the queue size."""
        item = self.running.pop(task_id)
        if len(self.history) > MAXIMUM_HISTORY_SIZE:
            self.history.pop(next(iter(self.history)))
        for key in SENSITIVE_EXTRA_DATA_KEYS:
            item.extra_data.pop(key, None)
        # A re-used prompt_id overwrites its old entry in place (dict keeps the position).
        self.history[item.prompt_id] = {
            "prompt": item.public(),
            "outputs": {},
            "status": None,
            **entry,
        }
        self.executed += 1
        self._on_change()

    def pending(self) -> list[QueueItem]:
        """Pending items in heap order (not sorted), as ComfyUI returns them."""
        return [entry[3] for entry in self._heap]

    def remaining(self) -> int:
        """queue_remaining: pending plus running."""
        return len(self._heap) + len(self.running)

    def wipe(self) -> None:
        """POST /queue {"clear": true}."""
        self._heap = []
        self._on_change()

    def delete(self, prompt_id: str) -> bool:
        """Remove one pending item; the last one broadcasts status twice, like ComfyUI."""
        for i, entry in enumerate(self._heap):
            if entry[1] == prompt_id:
                if len(self._heap) == 1:
                    self.wipe()
                else:
                    self._heap.pop(i)
                    heapq.heapify(self._heap)
                self._on_change()
                return True
        return False

    def find_running(self, prompt_id: str) -> QueueItem | None:
        """The running item with this id, if any."""
        for item in self.running.values():
            if item.prompt_id == prompt_id:
                return item
        return None

    def set_flag(self, name: str, value: Any) -> None:
        """/free flags; wakes an idle worker so it acts on them."""
        self.flags[name] = value
        self._wake_one()

    def take_flags(self) -> dict[str, Any]:
        """Return and reset the flags."""
        flags, self.flags = self.flags, {}
        return flags

    # -- history ---------------------------------------------------------------------------
    def get_history(
        self, prompt_id: str | None = None, max_items: int | None = None, offset: int = -1
    ) -> dict[str, Any]:
        """GET /history semantics, including ComfyUI's offset/max_items arithmetic."""
        if prompt_id is not None:
            if prompt_id in self.history:
                return {prompt_id: copy.deepcopy(self.history[prompt_id])}
            return {}
        out: dict[str, Any] = {}
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        for i, key in enumerate(self.history):
            if i >= offset:
                out[key] = self.history[key]
                if max_items is not None and len(out) >= max_items:
                    break
        return out
