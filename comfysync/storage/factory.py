"""Pick the remote backend from the storage settings, like requests picks an adapter."""

from __future__ import annotations

import logging

from .base import RemoteStore
from .settings import StorageSettings

log = logging.getLogger(__name__)


def build_remote_store(settings: StorageSettings) -> RemoteStore | None:
    """The configured remote store, or None when outputs stay on local disk.

    Called once at start-up with `Settings.storage`, which is already checked.
    Incomplete OSS config (already "local" there) logs one warning here.

    :raises StorageError: when the client library refuses the configuration.
    """
    if settings.oss_missing:
        missing = settings.oss_missing
        log.warning(
            "OSS storage is enabled but %s %s not set; outputs stay on local storage",
            ", ".join(missing),
            "is" if len(missing) == 1 else "are",
        )
    if settings.oss is not None:
        # Imported here so a local-only gateway never pays for oss2 or boto3.
        from .oss import OssStore

        store: RemoteStore = OssStore(settings.oss)
        log.info("storage: OSS bucket %s at %s", settings.oss.bucket, settings.oss.endpoint)
        return store
    if settings.s3 is not None:
        from .s3 import S3Store

        store = S3Store(settings.s3)
        log.info(
            "storage: %s bucket %s at %s",
            settings.provider,
            settings.s3.bucket,
            settings.s3.endpoint_url or "AWS",
        )
        return store
    return None
