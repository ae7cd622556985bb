"""ComfyUI's classic execution cache: node results keyed by an input signature."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .nodes import NodeImpl
from .storage import DataDirs


class _Never:
    """A signature part equal to nothing (ComfyUI uses NaN for 'cannot cache')."""

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return id(self)


def _hashable(value: Any) -> Any:
    if isinstance(value, (int, float, str, bool, type(None))):
        if isinstance(value, float) and value != value:
            return _Never()
        return value
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k), _hashable(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_hashable(v) for v in value))
    return _Never()


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


class Signatures:
    """Input signatures of every node of one prompt (node + ordered ancestry)."""

    def __init__(
        self,
        prompt: dict[str, Any],
        impls: dict[str, NodeImpl],
        unique_id_classes: set[str],
        dirs: DataDirs,
    ) -> None:
        self.prompt = prompt
        self.impls = impls
        self.unique_id_classes = unique_id_classes
        self.dirs = dirs
        self._changed: dict[str, Any] = {}
        self.keys: dict[str, Any] = {n: self._signature(n) for n in prompt}

    def _is_changed(self, node_id: str) -> Any:
        if node_id not in self._changed:
            node = self.prompt[node_id]
            impl = self.impls.get(node["class_type"])
            hook: Callable[..., Any] | None = impl.is_changed if impl else None
            self._changed[node_id] = hook(self.dirs, node["inputs"]) if hook else False
        return self._changed[node_id]

    def _immediate(self, node_id: str, order: dict[str, int]) -> Any:
        node = self.prompt.get(node_id)
        if node is None:
            return (_Never(),)
        parts: list[Any] = [node["class_type"], _hashable(self._is_changed(node_id))]
        if node["class_type"] in self.unique_id_classes:
            parts.append(node_id)
        inputs = node["inputs"]
        for key in sorted(inputs):
            value = inputs[key]
            if _is_link(value):
                parts.append((key, ("ANCESTOR", order[value[0]], value[1])))
            else:
                parts.append((key, _hashable(value)))
        return tuple(parts)

    def _ancestry(self, node_id: str, ancestors: list[str], order: dict[str, int]) -> None:
        node = self.prompt.get(node_id)
        if node is None:
            return
        inputs = node["inputs"]
        for key in sorted(inputs):
            value = inputs[key]
            if _is_link(value) and value[0] not in order:
                ancestors.append(value[0])
                order[value[0]] = len(ancestors) - 1
                self._ancestry(value[0], ancestors, order)

    def _signature(self, node_id: str) -> Any:
        ancestors: list[str] = []
        order: dict[str, int] = {}
        self._ancestry(node_id, ancestors, order)
        return (self._immediate(node_id, order), *(self._immediate(a, order) for a in ancestors))


class ExecutionCache:
    """Outputs, UI results and node instances, pruned to the current prompt like ComfyUI."""

    def __init__(self) -> None:
        self.outputs: dict[Any, tuple[Any, ...]] = {}
        self.ui: dict[Any, dict[str, Any]] = {}
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}

    def set_prompt(self, sigs: Signatures) -> None:
        """Keep only entries the new prompt can use (classic cache clean_unused)."""
        used = set()
        for key in sigs.keys.values():
            try:
                used.add(key)
            except TypeError:
                continue
        self.outputs = {k: v for k, v in self.outputs.items() if k in used}
        self.ui = {k: v for k, v in self.ui.items() if k in used}
        wanted = {(n, node["class_type"]) for n, node in sigs.prompt.items()}
        self.objects = {k: v for k, v in self.objects.items() if k in wanted}

    def instance(self, node_id: str, class_type: str) -> dict[str, Any]:
        """Per node-instance state (e.g. PreviewImage's random file prefix)."""
        return self.objects.setdefault((node_id, class_type), {})

    def reset(self) -> None:
        """/free: drop everything."""
        self.outputs.clear()
        self.ui.clear()
        self.objects.clear()
