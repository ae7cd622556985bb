"""A faithful ComfyUI simulator (HTTP + WebSocket) for tests, demos and benchmarks."""

from __future__ import annotations

from .config import SimConfig
from .runner import SimulatorThread, start_site
from .server import Simulator

__all__ = ["SimConfig", "Simulator", "SimulatorThread", "start_site"]
