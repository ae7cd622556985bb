"""Execution order (ComfyUI's execution list) and the per-prompt progress_state map."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def is_link(value: Any) -> bool:
    """An input value of the form [node_id, slot]."""
    return isinstance(value, list) and len(value) == 2


class ProgressState:
    """The growing progress_state map of one prompt."""

    def __init__(self, send: Callable[[dict[str, Any]], None], prompt_id: str) -> None:
        self._send = send
        self.prompt_id = prompt_id
        self.nodes: dict[str, list[Any]] = {}

    def _emit(self) -> None:
        pid = self.prompt_id
        self._send(
            {
                "prompt_id": pid,
                "nodes": {
                    n: {
                        "value": v,
                        "max": m,
                        "state": s,
                        "node_id": n,
                        "prompt_id": pid,
                        "display_node_id": n,
                        "parent_node_id": None,
                        "real_node_id": n,
                    }
                    for n, (v, m, s) in self.nodes.items()
                    if s != "pending"
                },
            }
        )

    def start(self, node: str) -> None:
        self.nodes[node] = [0.0, 1.0, "running"]
        self._emit()

    def update(self, node: str, value: float, total: float) -> None:
        self.nodes[node] = [value, total, "running"]
        self._emit()

    def finish(self, node: str) -> None:
        entry = self.nodes.setdefault(node, [0, 1, "pending"])
        entry[0], entry[2] = entry[1], "finished"
        self._emit()


def ancestors(prompt: dict[str, Any], outputs: list[str]) -> set[str]:
    """Nodes the given outputs depend on (including themselves)."""
    seen: set[str] = set()
    stack = list(outputs)
    while stack:
        node = stack.pop()
        if node in seen or node not in prompt:
            continue
        seen.add(node)
        stack += [v[0] for v in prompt[node]["inputs"].values() if is_link(v)]
    return seen


class ExecutionPlan:
    """ComfyUI's execution list: dependency dissolve with its 'UX friendly' node pick."""

    def __init__(
        self, prompt: dict[str, Any], info: dict[str, Any], cached: set[str], outputs: list[str]
    ) -> None:
        self.prompt = prompt
        self.info = info
        self.cached = cached
        self.pending: dict[str, bool] = {}
        self.block_count: dict[str, int] = {}
        self.blocking: dict[str, dict[str, bool]] = {}
        for node in outputs:
            self._add(node)

    def _is_output(self, node: str) -> bool:
        return self.info[self.prompt[node]["class_type"]].get("output_node") is True

    def _add(self, start: str) -> None:
        stack = [start]
        links: list[tuple[str, str]] = []
        while stack:
            node = stack.pop()
            if node in self.pending:
                continue
            self.pending[node] = True
            self.block_count[node] = 0
            self.blocking[node] = {}
            for value in self.prompt[node]["inputs"].values():
                if is_link(value) and value[0] not in self.cached:
                    stack.append(value[0])
                    links.append((value[0], node))
        for src, dst in links:
            if dst not in self.blocking[src]:
                self.blocking[src][dst] = True
                self.block_count[dst] += 1

    def pick(self) -> str:
        ready = [n for n in self.pending if self.block_count[n] == 0]
        if not ready:
            raise RuntimeError("Dependency cycle detected")
        for n in ready:
            if self._is_output(n):
                return n
        for n in ready:
            if any(self._is_output(b) for b in self.blocking[n]):
                return n
        for n in ready:
            for b in self.blocking[n]:
                if any(self._is_output(b2) for b2 in self.blocking.get(b, {})):
                    return n
        return ready[0]

    def done(self, node: str) -> None:
        del self.pending[node]
        for blocked in self.blocking.pop(node):
            self.block_count[blocked] -= 1
