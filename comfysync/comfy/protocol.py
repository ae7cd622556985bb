"""Shapes of ComfyUI's messages, and reading results out of them.

Both 0.3.x and current releases are covered: the WebSocket messages and the
`/history` entry kept their shapes; the Jobs API (`/api/jobs`) is newer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypedDict

from ..numbers import parse_whole


class FileRef(TypedDict):
    """One output file as ComfyUI lists it (`executed` frames and `/history`)."""

    filename: str
    subfolder: str
    type: str  # "output" | "temp" | "input"


class ExecutionErrorData(TypedDict, total=False):
    """The `data` of an `execution_error` frame (also kept in history messages)."""

    prompt_id: str
    node_id: str
    node_type: str
    executed: list[str]
    exception_message: str
    exception_type: str
    traceback: list[str]
    current_inputs: dict[str, Any]
    current_outputs: list[str]
    timestamp: int


class HistoryStatus(TypedDict):
    """`status` of a history entry."""

    status_str: str  # "success" | "error"
    completed: bool
    messages: list[list[Any]]


class HistoryEntry(TypedDict, total=False):
    """One `/history/<id>` entry."""

    prompt: list[Any]  # [number, prompt_id, graph, extra_data, outputs_to_execute]
    outputs: dict[str, dict[str, Any]]
    status: HistoryStatus
    meta: dict[str, Any]


NodeOutputs = dict[str, dict[str, Any]]

# Keys under a node's UI output whose items are files. Anything else that
# holds dicts with a "filename" is treated as a file too (see `iter_files`).
FILE_KEYS = ("images", "gifs", "videos", "audio", "files", "3d", "animated_images")


@dataclass
class Outcome:
    """How a prompt ended, as far as the gateway needs to know."""

    status: str  # "success" | "error" | "interrupted"
    outputs: NodeOutputs = field(default_factory=dict)
    error: ExecutionErrorData | None = None
    started_ms: int | None = None
    ended_ms: int | None = None

    @property
    def execution_time(self) -> float | None:
        """Seconds between ComfyUI's start and end timestamps, when both are known."""
        if self.started_ms is None or self.ended_ms is None:
            return None
        return round((self.ended_ms - self.started_ms) / 1000.0, 3)


def merge_ui_output(into: NodeOutputs, node_id: str, output: dict[str, Any]) -> None:
    """Add one `executed` output, extending lists when a node reports more than once."""
    current = into.setdefault(node_id, {})
    for key, value in output.items():
        if isinstance(value, list) and isinstance(current.get(key), list):
            current[key] = current[key] + value
        else:
            current[key] = value


def outcome_from_history(entry: HistoryEntry) -> Outcome | None:
    """Read a finished history entry; None while ComfyUI has not completed it."""
    status = entry.get("status")
    if not status:
        return None
    started = ended = None
    error: ExecutionErrorData | None = None
    interrupted = False
    for message in status.get("messages", []):
        if not isinstance(message, list) or len(message) != 2:
            continue
        kind, data = message
        stamp = data.get("timestamp") if isinstance(data, dict) else None
        if kind == "execution_start":
            started = stamp
        elif kind in ("execution_success", "execution_error", "execution_interrupted"):
            ended = stamp
            if kind == "execution_error":
                error = data
            elif kind == "execution_interrupted":
                interrupted = True
    if status.get("status_str") == "success":
        result = "success"
    elif interrupted:
        result = "interrupted"
    elif error is not None or status.get("status_str") == "error":
        result = "error"
    else:
        return None
    return Outcome(
        status=result,
        outputs=entry.get("outputs") or {},
        error=error,
        started_ms=started,
        ended_ms=ended,
    )


def node_sort_key(node_id: str) -> tuple[Any, ...]:
    """Numeric order for ids like "9", "277" and subgraph ids like "12:3"."""
    parts: list[Any] = []
    for part in str(node_id).split(":"):
        number = parse_whole(part)
        parts.append((0, number, "") if number is not None else (1, 0, part))
    return tuple(parts)


# Absolute paths in ComfyUI's error texts: its tracebacks ("/opt/ComfyUI/execution.py")
# and exception messages ("No such file or directory: '/srv/data/input/x.png'").
# Not after ':' '/' or a word character, so URLs and relative names stay.
_POSIX_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s/'\"]+/)+([^\s/'\",]+)")
_WINDOWS_PATH = re.compile(r"(?<![\w])[A-Za-z]:[\\/](?:[^\s\\/'\"]+[\\/])*([^\s\\/'\",]+)")


def redact_paths(value: Any) -> Any:
    """`value` with every absolute path in its texts cut to the file's name.

    ComfyUI's errors reveal where it is installed and where its data lives;
    the file name is what a client needs to understand the error.
    """
    if isinstance(value, str):
        return _WINDOWS_PATH.sub(r"\1", _POSIX_PATH.sub(r"\1", value))
    if isinstance(value, list):
        return [redact_paths(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_paths(v) for k, v in value.items()}
    return value
