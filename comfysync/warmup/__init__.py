"""The warm-up run at start (WARMUP_WORKFLOW), and the claims that share it between workers."""

from __future__ import annotations

from .runner import Warmup

__all__ = ["Warmup"]
