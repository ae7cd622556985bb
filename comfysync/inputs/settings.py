"""Limits for client-supplied images.

Defined and read from the environment in `comfysync.config.sections`, with every
other setting in one pass; kept importable here for the inputs code.
"""

from __future__ import annotations

from ..config.convert import AllowList, IPNetwork
from ..config.sections import InputSettings

__all__ = ["AllowList", "IPNetwork", "InputSettings"]
