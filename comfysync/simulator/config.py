"""Settings of the ComfyUI simulator: protocol version, timing knobs and fault rules."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

SUPPORTED_VERSIONS = ("0.3.64", "0.27")
# The model files the starter workflows in `workflows/` load, so `make demo` runs
# them; the captured servers had only random-sd15.safetensors.
STARTER_MODELS = {
    "checkpoints": [
        "v1-5-pruned-emaonly.safetensors",
        "sd_xl_base_1.0.safetensors",
        "sd_xl_refiner_1.0.safetensors",
    ]
}


@dataclass
class FailRule:
    """Answer the next `count` requests to `path` with `status` instead of serving them."""

    path: str
    status: int = 500
    count: int = 1
    body: str = ""


@dataclass
class CutRule:
    """Serve the next `count` requests to `path`, then cut the connection mid-answer.

    The work is done (a prompt is queued, a file read); the client gets no
    answer (`body_bytes` None) or the headers and the first `body_bytes`
    bytes of the body: a network that drops at the worst moment.
    """

    path: str
    body_bytes: int | None = None
    count: int = 1


@dataclass
class SimConfig:
    """Everything that shapes the simulator; most fields can change at run time."""

    version: str = "0.3.64"
    parallel: int = 1
    node_delay_ms: float = 0.0
    # Per node class delay overriding node_delay_ms, e.g. {"ImageBlur": 3000}.
    class_delay_ms: dict[str, float] = field(default_factory=dict)
    job_duration_ms: tuple[float, float] = (0.0, 0.0)
    http_delay_ms: dict[str, float] = field(default_factory=dict)
    fail: list[FailRule] = field(default_factory=list)
    cut: list[CutRule] = field(default_factory=list)
    preview_method: str = "none"
    # Test hook: output nodes listed here are validated/executed first, in this order.
    # Real ComfyUI iterates a Python set here, so the order is arbitrary but fixed per process.
    output_order: list[str] = field(default_factory=list)
    # Images with more pixels than this are processed in a worker thread.
    thread_pixels: int = 512 * 512
    # Appends one JSON line per finished prompt here (prompt and client id, when it
    # started and ended, how many waited behind it): the server's own record of
    # the work it got, which survives a kill -9.
    job_log: str | None = None
    # Model files beside the captured server's, by folder; read when the server starts.
    # Empty: exactly the captured server (the replay tests).
    models: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in STARTER_MODELS.items()}
    )

    def __post_init__(self) -> None:
        if self.version not in SUPPORTED_VERSIONS:
            raise ValueError(f"unsupported comfy version {self.version!r}")

    @property
    def is_v027(self) -> bool:
        """True for the 0.27 protocol generation."""
        return self.version == "0.27"

    def node_delay(self, class_type: str) -> float:
        """Seconds a node of this class sleeps before it runs."""
        return self.class_delay_ms.get(class_type, self.node_delay_ms) / 1000.0

    def pick_job_duration(self) -> float:
        """Seconds one job should take in total (0 when the knob is off)."""
        lo, hi = self.job_duration_ms
        if hi <= 0:
            return 0.0
        return random.uniform(lo, hi) / 1000.0 if hi > lo else lo / 1000.0

    def apply(self, changes: dict[str, Any]) -> None:
        """Apply a /_sim/config body; unknown keys raise KeyError."""
        for key, value in changes.items():
            if key == "job_duration_ms":
                self.job_duration_ms = parse_range(value)
            elif key == "node_delay_ms":
                self.node_delay_ms = float(value)
            elif key == "class_delay_ms":
                self.class_delay_ms = {str(k): float(v) for k, v in (value or {}).items()}
            elif key == "parallel":
                self.parallel = max(1, int(value))
            elif key == "http_delay_ms":
                self.http_delay_ms = {str(k): float(v) for k, v in (value or {}).items()}
            elif key == "fail":
                rules = value if isinstance(value, list) else [value] if value else []
                self.fail = [FailRule(**r) for r in rules]
            elif key == "cut":
                rules = value if isinstance(value, list) else [value] if value else []
                self.cut = [CutRule(**r) for r in rules]
            elif key == "preview_method":
                self.preview_method = str(value)
            elif key == "output_order":
                self.output_order = [str(x) for x in value or []]
            elif key == "thread_pixels":
                self.thread_pixels = int(value)
            elif key == "models":
                self.models = {str(k): [str(n) for n in v] for k, v in (value or {}).items()}
            else:
                raise KeyError(key)

    def snapshot(self) -> dict[str, Any]:
        """JSON view of the run-time settings."""
        return {
            "version": self.version,
            "parallel": self.parallel,
            "node_delay_ms": self.node_delay_ms,
            "class_delay_ms": dict(self.class_delay_ms),
            "job_duration_ms": list(self.job_duration_ms),
            "http_delay_ms": dict(self.http_delay_ms),
            "fail": [vars(r) for r in self.fail],
            "cut": [vars(r) for r in self.cut],
            "preview_method": self.preview_method,
            "output_order": list(self.output_order),
            "thread_pixels": self.thread_pixels,
            "models": {k: list(v) for k, v in self.models.items()},
        }


def parse_range(value: Any) -> tuple[float, float]:
    """Accept 250, "250", "100-400", [100, 400] and return (min, max) in ms."""
    if isinstance(value, (list, tuple)):
        lo, hi = (float(value[0]), float(value[-1])) if value else (0.0, 0.0)
    elif isinstance(value, str) and "-" in value.strip()[1:]:
        a, b = value.split("-", 1)
        lo, hi = float(a), float(b)
    else:
        lo = hi = float(value or 0)
    if hi < lo:
        lo, hi = hi, lo
    return lo, hi


@cache
def version_data(version: str) -> dict[str, Any]:
    """Static per-version data taken from the captures (system_stats, features, ...)."""
    text = resources.files(__package__).joinpath("data/versions.json").read_text("utf-8")
    return json.loads(text)[version]


@cache
def object_info_text(version: str) -> str:
    """Raw object_info JSON for one version (parsed per use so callers may mutate)."""
    name = f"data/object_info_{version}.json"
    return resources.files(__package__).joinpath(name).read_text("utf-8")
