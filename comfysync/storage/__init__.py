"""Where outputs go: local disk always, then optionally a remote bucket (OSS, R2, S3).

Backends are imported lazily by `build_remote_store`, so importing this package
never loads boto3 or oss2.
"""

from __future__ import annotations

from .base import LocalStore, RemoteStore, StoredFile, remote_key
from .factory import build_remote_store
from .local import LocalDiskStore
from .retention import PruneResult, RetentionPruner, prune
from .settings import RetentionSettings, StorageSettings, UploadSettings
from .uploads import UploadOutcome, upload_all

__all__ = [
    "LocalDiskStore",
    "LocalStore",
    "PruneResult",
    "RemoteStore",
    "RetentionPruner",
    "RetentionSettings",
    "StorageSettings",
    "StoredFile",
    "UploadOutcome",
    "UploadSettings",
    "build_remote_store",
    "prune",
    "remote_key",
    "upload_all",
]
