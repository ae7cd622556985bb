"""Pick the run store: Redis when a URL is configured, else SQLite beside the data."""

from __future__ import annotations

import logging
import os

from .base import RunStore

log = logging.getLogger(__name__)

SQLITE_NAME = "runs.sqlite3"


def build_run_store(data_dir: str, redis_url: str = "") -> RunStore:
    """Redis at `redis_url` when it is set (several instances), else `<data_dir>/runs.sqlite3`.

    :raises RunStoreUnavailable: the SQLite file cannot be opened or stays locked.
    """
    if redis_url:
        # Imported here so an embedded gateway never loads the redis package.
        from .redis import RedisRunStore

        log.info("runs: Redis run store")
        return RedisRunStore(redis_url)
    from .sqlite import SqliteRunStore

    path = os.path.join(data_dir, SQLITE_NAME)
    log.info("runs: SQLite run store at %s", path)
    return SqliteRunStore(path)
