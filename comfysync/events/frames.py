"""One prompt's ComfyUI frames, as run events: started, progress, executed.

Progress counts nodes: done of those to run, cached nodes left out. ComfyUI
sends `progress_state` (every node's value, max and state) beside the older
`executing` and `progress` frames; once a prompt's first `progress_state`
arrives it is the one source, so a step is never reported twice.
"""

from __future__ import annotations

from typing import Any

from ..runs.base import NewEvent, RunStore


class FrameEvents:
    """Turns the frames about one prompt into run events, in order."""

    def __init__(self, graph: dict[str, Any] | None) -> None:
        self.graph = graph or {}
        self.total = len(self.graph)
        self.cached: set[str] = set()
        self.started: list[str] = []  # nodes in the order they began (without progress_state)
        self.states = False  # progress_state seen: it alone drives progress
        self.last: tuple[Any, ...] | None = None  # the last progress reported

    def on_frame(self, kind: str, data: dict[str, Any]) -> list[NewEvent]:
        """The events one frame makes (often none)."""
        if kind == "execution_start":
            # ComfyUI's own clock (epoch ms): when it began, not when we heard.
            return [("started", {"prompt_id": data.get("prompt_id"), "at": data.get("timestamp")})]
        if kind == "execution_cached":
            nodes = data.get("nodes")
            if isinstance(nodes, list):
                self.cached.update(str(n) for n in nodes)
            return []
        if kind == "progress_state":
            self.states = True
            return self._from_states(data.get("nodes"))
        if kind == "executed":
            node = data.get("node")
            output = data.get("output")
            if node is None or not isinstance(output, dict):
                return []
            node = str(node)
            return [("executed", {"node": node, "node_type": self._type(node), "output": output})]
        if self.states:
            return []
        if kind == "executing":
            node = data.get("node")
            if node is None:
                return []
            node = str(node)
            if node not in self.started:
                self.started.append(node)
            return self._progress(node, 0, 1, len(self.started) - 1)
        if kind == "progress":
            node = data.get("node")
            if node is None:
                return []
            node = str(node)
            done = len(self.started) - 1 if node in self.started else len(self.started)
            return self._progress(node, data.get("value"), data.get("max"), done)
        return []

    def _from_states(self, nodes: Any) -> list[NewEvent]:
        if not isinstance(nodes, dict):
            return []
        done = 0
        running = None
        for node_id, state in nodes.items():
            if not isinstance(state, dict) or str(node_id) in self.cached:
                continue
            if state.get("state") == "finished":
                done += 1
            elif state.get("state") == "running":
                running = (str(node_id), state)
        if running is None:
            return []
        node, state = running
        return self._progress(node, state.get("value"), state.get("max"), done)

    def _progress(self, node: str, value: Any, maximum: Any, done: int) -> list[NewEvent]:
        to_run = max(0, self.total - len(self.cached))
        done = min(done, to_run)
        key = (node, value, maximum, done)
        if key == self.last:
            return []
        self.last = key
        return [
            (
                "progress",
                {
                    "node": node,
                    "node_type": self._type(node),
                    "value": _number(value),
                    "max": _number(maximum),
                    "nodes_done": done,
                    "nodes_total": to_run,
                },
            )
        ]

    def _type(self, node: str) -> str | None:
        entry = self.graph.get(node)
        return entry.get("class_type") if isinstance(entry, dict) else None


def _number(value: Any) -> int | float | None:
    """ComfyUI sends steps as ints or floats (1.0); whole numbers come out as ints."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else value


def progress_body(event_data: dict[str, Any]) -> dict[str, Any]:
    """The status endpoint's `progress` from a progress event: nodes done of nodes to run."""
    node_type = event_data.get("node_type") or f"node {event_data.get('node')}"
    value, maximum = event_data.get("value"), event_data.get("max")
    message = f"{node_type} {value}/{maximum}" if maximum not in (None, 0, 1) else node_type
    return {
        "current": event_data.get("nodes_done", 0),
        "total": event_data.get("nodes_total", 0),
        "message": message,
    }


# Events after the newest progress one, at most, that `live_view` looks past.
_LOOK_BACK = 16
_RUNNING_EVENTS = frozenset({"started", "progress", "executed"})


def live_view(store: RunStore, run_id: str) -> tuple[bool, dict[str, Any] | None]:
    """What a run's latest events say before its record does (its `running` write is
    deferred): whether ComfyUI has started it, and the `progress` body of its newest
    progress event."""
    last = store.last_event(run_id)
    if last is None or last.type not in _RUNNING_EVENTS:
        return False, None
    if last.type == "progress":
        return True, progress_body(last.data)
    for event in reversed(store.events(run_id, after=max(0, last.seq - _LOOK_BACK))):
        if event.type == "progress":
            return True, progress_body(event.data)
    return True, None
