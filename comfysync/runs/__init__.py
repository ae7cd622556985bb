"""Durable runs: the record of every accepted generation, and where it is kept.

The Redis backend (`comfysync.runs.redis`) is imported only by `build_run_store`,
so importing this package never loads the redis client.
"""

from .base import (
    CANCELLED,
    DISPATCHING,
    FAILED,
    IN_FLIGHT,
    OWNED,
    QUEUED,
    RUNNING,
    STATUSES,
    SUBMITTED,
    SUCCESS,
    TERMINAL,
    UPLOADING,
    ChangeWaiters,
    Claim,
    IdempotencyConflict,
    QueueFull,
    RunRecord,
    RunStore,
    RunStoreUnavailable,
    body_hash,
    wakes_queue,
)
from .factory import build_run_store
from .sqlite import SqliteRunStore

__all__ = [
    "CANCELLED",
    "DISPATCHING",
    "FAILED",
    "IN_FLIGHT",
    "OWNED",
    "QUEUED",
    "RUNNING",
    "STATUSES",
    "SUBMITTED",
    "SUCCESS",
    "TERMINAL",
    "UPLOADING",
    "ChangeWaiters",
    "Claim",
    "IdempotencyConflict",
    "QueueFull",
    "RunRecord",
    "RunStore",
    "RunStoreUnavailable",
    "SqliteRunStore",
    "body_hash",
    "build_run_store",
    "wakes_queue",
]
