"""Prune old local outputs by age and total size, oldest first, in a background greenlet."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import gevent

from ..greenlets import Background
from .settings import RetentionSettings

log = logging.getLogger(__name__)

# Yield to other greenlets this often while walking a large tree.
_YIELD_EVERY = 256


@dataclass(frozen=True)
class PruneResult:
    """What one pass deleted and what is left."""

    deleted: int = 0
    freed_bytes: int = 0
    remaining_files: int = 0
    remaining_bytes: int = 0


@dataclass(frozen=True)
class _Entry:
    mtime: float
    size: int
    path: str


def prune(
    root: str,
    *,
    max_age: float | None = None,
    max_bytes: int | None = None,
    min_age: float = 3600.0,
    now: float | None = None,
) -> PruneResult:
    """Delete files under `root` older than `max_age` seconds, then oldest first while the
    tree is larger than `max_bytes`; a file younger than `min_age` is never deleted.

    Empty sub-folders older than `min_age` are removed too; `root` itself stays.
    """
    now = time.time() if now is None else now
    entries = sorted(_scan(root), key=lambda entry: entry.mtime)
    total = sum(entry.size for entry in entries)
    deleted = freed = 0
    for count, entry in enumerate(entries, 1):
        age = now - entry.mtime
        too_old = max_age is not None and age > max_age
        too_big = max_bytes is not None and total > max_bytes
        # Sorted oldest first: once a file is young or kept, so is every later one.
        if age < min_age or not (too_old or too_big):
            break
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            pass  # deleted meanwhile (another worker's pruner); it no longer counts
        except OSError as err:
            log.warning("retention: cannot delete %s: %s", entry.path, err)
            continue
        deleted += 1
        freed += entry.size
        total -= entry.size
        if count % _YIELD_EVERY == 0:
            gevent.sleep(0)
    _remove_empty_dirs(root, now - min_age)
    if deleted:
        log.info("retention: deleted %d files (%d bytes) under %s", deleted, freed, root)
    return PruneResult(deleted, freed, len(entries) - deleted, total)


def _scan(root: str) -> Iterator[_Entry]:
    """Every regular file under `root`, yielding to other greenlets now and then."""
    pending = [root]
    seen = 0
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                for item in listing:
                    seen += 1
                    if seen % _YIELD_EVERY == 0:
                        gevent.sleep(0)
                    try:
                        if item.is_dir(follow_symlinks=False):
                            pending.append(item.path)
                        elif item.is_file(follow_symlinks=False):
                            info = item.stat(follow_symlinks=False)
                            yield _Entry(info.st_mtime, info.st_size, item.path)
                    except FileNotFoundError:
                        continue  # removed while we looked
        except FileNotFoundError:
            continue
        except OSError as err:
            log.warning("retention: cannot list %s: %s", folder, err)


def _remove_empty_dirs(root: str, cutoff: float) -> None:
    """Remove empty folders last changed before `cutoff`, so a fresh one a writer is
    about to fill is left alone."""
    for folder, _dirs, _files in os.walk(root, topdown=False):
        if folder == root:
            continue
        try:
            if os.stat(folder).st_mtime < cutoff and not os.listdir(folder):
                os.rmdir(folder)
        except OSError:
            continue  # not empty after all, or gone: either way nothing to do


class RetentionPruner:
    """Runs `prune` on `root` every `settings.interval` seconds in its own greenlet."""

    def __init__(self, root: str, settings: RetentionSettings) -> None:
        self.root = os.path.abspath(root)
        self.settings = settings
        self.background = Background("retention")
        self._greenlet: gevent.Greenlet | None = None

    def run_once(self) -> PruneResult:
        """One pass with the configured limits."""
        return prune(
            self.root,
            max_age=self.settings.max_age,
            max_bytes=self.settings.max_bytes,
            min_age=self.settings.min_age,
        )

    def start(self) -> None:
        """Start the loop if any limit is configured; calling it twice is harmless."""
        if not self.settings.enabled or self._greenlet is not None:
            return
        self._greenlet = self.background.spawn(self._loop, name="prune")

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the loop, waiting at most `timeout` seconds."""
        self.background.kill(timeout=timeout)
        self._greenlet = None

    def _loop(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception:
                # One bad pass (a permission error, a vanished mount) must not end pruning.
                log.exception("retention: pruning %s failed", self.root)
            gevent.sleep(self.settings.interval)
