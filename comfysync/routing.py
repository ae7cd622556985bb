"""Which ComfyUI server gets the next run: the one that would finish it first.

A server's load is the larger of the prompts this process has on it and the
`queue_remaining` its status frames report (which counts every client's, other
workers' and instances' included). Its expected time to finish one more job is
(load + 1) x its recent time per job for the workflow (the fleet's mean for a
server that has not run one yet). Ties go to the server whose last job used the
same models: they are loaded there, a cold load costs tens of seconds.

The ranking is advisory and cheap (no store round trip): the run store's claim
is what enforces each server's room, atomically, across every process.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .comfy.backend import ComfyBackend
from .runs.base import admits

__all__ = ["admits", "has_room", "load", "models_of", "ranked"]

# Input names whose string values are model files (ckpt_name, lora_name, unet_name...).
_MODEL_SUFFIX = "_name"
_MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
DEFAULT_JOB_SECONDS = 1.0  # before any server has finished a job


def models_of(graph: dict[str, Any] | None) -> frozenset[str]:
    """The model files a graph loads: what a server keeps warm after running it."""
    found = set()
    for node in (graph or {}).values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        for key, value in (inputs or {}).items():
            if (
                isinstance(value, str)
                and key.endswith(_MODEL_SUFFIX)
                and value.lower().endswith(_MODEL_EXTENSIONS)
            ):
                found.add(value)
    return frozenset(found)


def load(backend: ComfyBackend) -> int:
    """Prompts the server holds, as far as this process can tell."""
    return max(backend.claimed, backend.watcher.queue_remaining)


def has_room(backend: ComfyBackend) -> bool:
    """Whether this process's own prompts leave the server room (the store has the last word)."""
    return backend.limit <= 0 or backend.claimed < backend.limit


def ranked(
    backends: Sequence[ComfyBackend],
    route: dict[str, Any] | None = None,
    *,
    workflow: str | None = None,
    models: frozenset[str] = frozenset(),
) -> list[ComfyBackend]:
    """The servers that may take a run now (up, room, allowed by `route`), best first.

    A run pinned to down servers waits for them while others are up (expired
    after RUN_TIMEOUT). When every server is down, they all are candidates: the
    attempt fails at once with ComfyUI's error and is retried with backoff, as
    with a single server, rather than waiting silently for RUN_TIMEOUT.
    """
    allowed = [b for b in backends if admits(route, b.name, b.tags)]
    if any(b.up for b in backends):
        allowed = [b for b in allowed if b.up]
    able = [b for b in allowed if has_room(b)]
    if len(able) < 2:
        return able
    fallback = _fleet_mean(b.job_seconds(workflow) for b in able)

    def key(item: tuple[int, ComfyBackend]) -> tuple[float, int, int, int]:
        index, backend = item
        seconds = backend.job_seconds(workflow) or fallback
        warm = 0 if models and models <= backend.last_models else 1
        busy = load(backend)
        return (round((busy + 1) * seconds, 3), warm, busy, index)

    return [b for _, b in sorted(enumerate(able), key=key)]


def _fleet_mean(values: Iterable[float | None]) -> float:
    known = [v for v in values if v]
    return sum(known) / len(known) if known else DEFAULT_JOB_SECONDS
