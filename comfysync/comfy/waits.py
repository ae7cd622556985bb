"""One client's wait for one prompt, fed by the watcher's reader greenlet."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gevent.event import Event

from ..errors import ExecutionFailed, GatewayError, Interrupted
from .protocol import ExecutionErrorData, Outcome, merge_ui_output, redact_paths

FrameListener = Callable[[str, dict[str, Any]], None]


def execution_failed(prompt_id: str, data: ExecutionErrorData) -> ExecutionFailed:
    """The error a client gets when a node raised inside ComfyUI."""
    node_type = data.get("node_type", "")
    message = redact_paths(data.get("exception_message", "")).strip()
    return ExecutionFailed(
        f"{node_type or 'A node'} failed: {message}" if message else None,
        prompt_id=prompt_id,
        node_id=data.get("node_id"),
        node_type=node_type,
        exception_type=data.get("exception_type"),
        exception_message=message,
        traceback=redact_paths(data.get("traceback", [])),
    )


class PromptWait:
    """State of one prompt the gateway is waiting for.

    The reader greenlet updates it from frames; `done` is set once there is an
    outcome, an error, or a reason to stop waiting (client gone, shutdown).
    `gap` records that frames may have been missed (socket down at some point),
    in which case the result is read from `/history` instead of the frames.
    """

    __slots__ = (
        "prompt_id",
        "submitted",
        "outputs",
        "started_ms",
        "gap",
        "last_event",
        "outcome",
        "error",
        "needs_history",
        "client_gone",
        "done",
        "listener",
    )

    def __init__(
        self, prompt_id: str, gap: bool = False, listener: FrameListener | None = None
    ) -> None:
        self.prompt_id = prompt_id
        self.submitted = False
        self.outputs: dict[str, dict[str, Any]] = {}
        self.started_ms: int | None = None
        self.gap = gap
        self.last_event = time.monotonic()
        self.outcome: Outcome | None = None
        self.error: GatewayError | None = None
        self.needs_history = False
        self.client_gone = False
        self.done = Event()
        self.listener = listener  # told of every frame about this prompt

    # -- fed by the reader greenlet ------------------------------------------

    def on_frame(self, kind: str, data: dict[str, Any]) -> None:
        """Apply one WebSocket message about this prompt."""
        self.last_event = time.monotonic()
        if self.settled:
            return
        if self.listener is not None:
            self.listener(kind, data)
        if kind == "execution_start":
            self.started_ms = data.get("timestamp")
        elif kind == "executing":
            if data.get("node") is None:
                self._ended()
        elif kind == "executed":
            node = data.get("node")
            output = data.get("output")
            if node is not None and isinstance(output, dict):
                merge_ui_output(self.outputs, str(node), output)
        elif kind == "execution_success":
            if not self.gap:
                # Every `executed` precedes success, so the frames already hold
                # the outputs; no need to wait for the history entry.
                self.finish(
                    Outcome(
                        "success",
                        outputs=self.outputs,
                        started_ms=self.started_ms,
                        ended_ms=data.get("timestamp"),
                    )
                )
        elif kind == "execution_error":
            self.fail(execution_failed(self.prompt_id, data))  # type: ignore[arg-type]
        elif kind == "execution_interrupted":
            self.fail(Interrupted(prompt_id=self.prompt_id, node_id=data.get("node_id")))

    def _ended(self) -> None:
        # `executing null` is ComfyUI's last word on a prompt; reaching it
        # without a verdict means frames were missed: ask the history.
        self.needs_history = True
        self.done.set()

    # -- settled by anyone ---------------------------------------------------

    @property
    def settled(self) -> bool:
        """Whether the wait has its final result or error."""
        return self.outcome is not None or self.error is not None

    def finish(self, outcome: Outcome) -> None:
        """Settle with a result."""
        if not self.settled:
            self.outcome = outcome
            self.done.set()

    def fail(self, error: GatewayError) -> None:
        """Settle with an error."""
        if not self.settled:
            self.error = error
            self.done.set()

    def settle(self, outcome: Outcome) -> None:
        """Settle from an outcome read from ComfyUI's history."""
        if outcome.status == "success":
            self.finish(outcome)
        elif outcome.status == "interrupted":
            self.fail(Interrupted(prompt_id=self.prompt_id))
        else:
            self.fail(execution_failed(self.prompt_id, outcome.error or {}))

    def abandon(self) -> None:
        """The client went away; wake the waiter so it can cancel the prompt."""
        if not self.settled:
            self.client_gone = True
            self.done.set()
