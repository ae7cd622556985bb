"""Wake-ups between the processes of one host that share a SQLite run store.

Each process binds one UNIX datagram socket in a folder next to the database
and reads it in one greenlet; a change is sent, as the run ids it touched,
to every other socket in the folder. Sends never wait: a peer whose queue is
full gets the ids later from a retrying greenlet, merged into one datagram.
Linux queues at most `net.unix.max_dgram_qlen` datagrams per socket (10 by
default, seen here), which a busy peer can fill within one loop iteration,
so dropping there would lose wake-ups exactly when latency matters most.
Waiters still use bounded timeouts and re-read the store: the bus only makes
them fast, the store stays the truth.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterable

import gevent
from gevent import socket as gsocket

from ..greenlets import Background

log = logging.getLogger(__name__)

# sockaddr_un's sun_path holds 108 bytes with the terminating NUL.
MAX_SOCKET_PATH = 107
# Any key of this value asks the receiver to wake every waiter (ids were merged away).
EVERYTHING = "*all*"
# Ids sent in one datagram; far below the 212 kB a datagram may carry here.
_BATCH = 400
# Ids held for one congested peer before they collapse into EVERYTHING.
_BACKLOG_MAX = 2000
# The folder listing is re-read when the folder changes (checked at most every
# _STAT_EVERY s: a stat per change cost 7% of a SQLite write), and at least every
# _LIST_MAX_AGE s: a peer that joins within the same timestamp tick leaves the
# mtime unchanged.
_STAT_EVERY = 0.01
_LIST_MAX_AGE = 1.0
_SOCKET_NAME = "{pid}-{token}.sock"


def bus_folder(db_path: str) -> str:
    """The folder of the bus for a database: beside it, or a short one in the temp dir.

    Socket paths are limited to 107 bytes, so a deep data folder falls back to
    `<tmp>/comfysync-bus-<uid>-<hash of the database's real path>`.
    """
    folder = os.path.abspath(db_path) + ".bus"
    longest = os.path.join(folder, _SOCKET_NAME.format(pid="4194304", token="x" * 12))
    if len(os.fsencode(longest)) <= MAX_SOCKET_PATH:
        return folder
    digest = hashlib.sha256(os.fsencode(os.path.realpath(db_path))).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"comfysync-bus-{os.geteuid()}-{digest}")


def _own_folder(folder: str) -> None:
    """Create `folder` (0700), or check that an existing one is this user's and not world-writable.

    The fallback lives in the shared temp dir, where another user could have
    made it first to send or read wake-ups.

    :raises PermissionError: it belongs to another user or anybody may write to it.
    """
    os.makedirs(folder, mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise PermissionError(f"run store bus folder {folder} is not a folder of this user")
    if info.st_mode & 0o002:
        raise PermissionError(f"run store bus folder {folder} is writable by anybody")


class DatagramBus:
    """One process's end of the bus: a socket others send to, and a sender to all of them."""

    def __init__(self, folder: str, on_keys: Callable[[list[str]], None]) -> None:
        self.folder = folder
        self._on_keys = on_keys
        _own_folder(folder)
        name = _SOCKET_NAME.format(pid=os.getpid(), token=secrets.token_hex(6))
        self.path = os.path.join(folder, name)
        self._recv = gsocket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._recv.bind(self.path)
        # The sender is the plain socket, non-blocking: a send never yields or waits.
        self._send = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._send.setblocking(False)
        self._peers: list[str] = []
        self._listed_mtime = -1
        self._listed_at = 0.0
        self._stat_at = -_STAT_EVERY
        self._backlog: dict[str, set[str]] = {}
        self._background = Background("runs-bus")
        self._retrying: gevent.Greenlet | None = None
        self._closed = False
        self._background.spawn(self._read, name="read")

    # -- sending -----------------------------------------------------------------

    def publish(self, keys: Iterable[str]) -> None:
        """Send `keys` to every other process of the bus; never waits."""
        if self._closed:
            return
        keys = list(keys)
        if not keys:
            return
        for peer in self._current_peers():
            if peer in self._backlog:
                self._hold(peer, keys)
            else:
                self._send_to(peer, keys)

    def _send_to(self, peer: str, keys: list[str]) -> bool:
        """Send to one peer; True when it took everything (or is gone for good)."""
        for start in range(0, len(keys), _BATCH):
            payload = "\n".join(keys[start : start + _BATCH]).encode()
            try:
                self._send.sendto(payload, socket.MSG_DONTWAIT, peer)
            except (BlockingIOError, InterruptedError):
                self._hold(peer, keys[start:])
                return False
            except OSError as err:
                if err.errno == errno.ENOBUFS:
                    self._hold(peer, keys[start:])
                    return False
                self._forget(peer, err)
                return True
        return True

    def _hold(self, peer: str, keys: list[str]) -> None:
        held = self._backlog.setdefault(peer, set())
        if EVERYTHING not in held:
            held.update(keys)
            if len(held) > _BACKLOG_MAX:
                held.clear()
                held.add(EVERYTHING)
        if self._retrying is None or self._retrying.dead:
            self._retrying = self._background.spawn(self._retry, name="retry")

    def _retry(self) -> None:
        delay = 0.0005
        while self._backlog and not self._closed:
            gevent.sleep(delay)
            for peer in list(self._backlog):
                keys = sorted(self._backlog.pop(peer))
                self._send_to(peer, keys)
            delay = min(delay * 2, 0.05)

    def _forget(self, peer: str, err: OSError) -> None:
        """A peer that is gone: its socket file removed when nobody reads it."""
        if err.errno == errno.ECONNREFUSED:
            # The file is there but its process is not: it died without closing.
            try:
                os.unlink(peer)
            except FileNotFoundError:
                pass
        elif err.errno != errno.ENOENT:
            log.warning("run store bus: cannot send to %s: %s", peer, err)
        self._backlog.pop(peer, None)
        if peer in self._peers:
            self._peers.remove(peer)

    def _current_peers(self) -> list[str]:
        now = time.monotonic()
        if now - self._stat_at < _STAT_EVERY:
            return self._peers
        self._stat_at = now
        try:
            mtime = os.stat(self.folder).st_mtime_ns
        except FileNotFoundError:
            _own_folder(self.folder)
            mtime = -2
        if mtime != self._listed_mtime or now - self._listed_at > _LIST_MAX_AGE:
            self._listed_mtime, self._listed_at = mtime, now
            try:
                names = os.listdir(self.folder)
            except FileNotFoundError:
                names = []
            self._peers = [
                os.path.join(self.folder, n)
                for n in names
                if n.endswith(".sock") and os.path.join(self.folder, n) != self.path
            ]
        return self._peers

    # -- receiving ---------------------------------------------------------------

    def _read(self) -> None:
        while not self._closed:
            try:
                payload = self._recv.recv(256 * 1024)
            except OSError:
                if self._closed:
                    return
                raise
            keys = payload.decode(errors="replace").split("\n")
            self._on_keys(keys)

    # -- life cycle --------------------------------------------------------------

    def close(self) -> None:
        """Stop reading, remove this process's socket; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._background.kill()
        self._recv.close()
        self._send.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def abandon(self) -> None:
        """In a forked child: drop the parent's end without touching its socket file."""
        self._closed = True
        self._background.group.kill(block=False)
        self._recv.close()
        self._send.close()
