"""Whether a process id is still alive: for state that outlives the process that wrote it."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True while a process with this id exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
