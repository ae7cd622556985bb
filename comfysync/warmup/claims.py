"""Which worker warms each ComfyUI server, shared by the workers of one host in `DATA_DIR/warmup/`.

Each worker holds a shared lock on `gateway.lock` for as long as it lives.
The first worker of a fresh start finds nobody holding it (its exclusive
try succeeds) and clears what the previous start left, so every start warms
every server again; a worker gunicorn replaces later finds the others still
holding it and keeps what they did, so it warms nothing twice. How each server
stands is one JSON file, `servers.json`, changed only under `claims.lock`.

The kernel drops a dead process's locks, so a worker killed mid-warm-up
leaves a claim whose pid is gone: the next worker to look takes it over.
"""

from __future__ import annotations

import fcntl
import json
import os
from typing import Any, BinaryIO

from ..pids import alive

STATE_FILE = "servers.json"
# A claim that is still under way (its owner is alive); anything else is final.
UNDER_WAY = frozenset({"running", "waiting"})


class Claims:
    """One worker's view of the shared warm-up files."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._life: BinaryIO | None = None

    def open(self) -> None:
        """Join this start's workers; the first one clears the previous start's state."""
        os.makedirs(self.folder, exist_ok=True)
        self._life = open(os.path.join(self.folder, "gateway.lock"), "ab")  # noqa: SIM115
        try:
            fcntl.flock(self._life, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # other workers of this start are alive: keep what they recorded
        else:
            with self._locked():
                _remove(self._path())
        # Not atomic (the lock is dropped, then taken shared), which is harmless:
        # another worker clearing in between finds nothing claimed yet.
        fcntl.flock(self._life, fcntl.LOCK_SH)

    def close(self) -> None:
        """Leave: our shared lock goes with the file."""
        if self._life is not None:
            self._life.close()
            self._life = None

    def claim(self, server: str) -> dict[str, Any] | None:
        """None when this process is to warm `server` (now claimed); else how it stands."""
        with self._locked():
            states = self._read()
            state = states.get(server)
            if state is not None and not _takeable(state):
                return state
            states[server] = {"status": "running", "pid": os.getpid()}
            self._write(states)
            return None

    def states(self) -> dict[str, Any]:
        """How every server stands, as last recorded (whole: files are replaced, not rewritten)."""
        return self._read()

    def record(self, server: str, state: dict[str, Any]) -> None:
        """Record how `server` stands (our pid is added, which keeps a claim ours)."""
        with self._locked():
            states = self._read()
            states[server] = {**state, "pid": os.getpid()}
            self._write(states)

    def _path(self) -> str:
        return os.path.join(self.folder, STATE_FILE)

    def _locked(self) -> _Lock:
        return _Lock(os.path.join(self.folder, "claims.lock"))

    def _read(self) -> dict[str, Any]:
        try:
            with open(self._path(), "rb") as handle:
                data = json.load(handle)
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, states: dict[str, Any]) -> None:
        temporary = self._path() + f".{os.getpid()}"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(states, handle)
        os.replace(temporary, self._path())  # readers never see half a file


class _Lock:
    """`claims.lock`, held exclusively for a read-modify-write of the state (microseconds)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.handle: BinaryIO | None = None

    def __enter__(self) -> _Lock:
        self.handle = open(self.path, "ab")  # noqa: SIM115
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.handle is not None
        self.handle.close()  # releases the lock


def _takeable(state: dict[str, Any]) -> bool:
    """A claim we may take: ours already, or under way by a process that is gone."""
    if state.get("status") not in UNDER_WAY:
        return False
    pid = state.get("pid")
    return pid == os.getpid() or not (isinstance(pid, int) and alive(pid))


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
