"""Pick the remote backend from the environment, like requests picks an adapter."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .base import RemoteStore
from .settings import load_oss_settings, load_s3_settings, storage_provider

log = logging.getLogger(__name__)


def build_remote_store(env: Mapping[str, str]) -> RemoteStore | None:
    """The configured remote store, or None when outputs stay on local disk.

    Called once at start-up with `Settings.env`. Incomplete OSS config logs one
    warning and returns None; every other bad value fails start-up.

    :raises ConfigError: naming the variable that is missing or unusable.
    :raises StorageError: when the client library refuses the configuration.
    """
    provider = storage_provider(env)
    if provider == "oss":
        oss_settings = load_oss_settings(env)
        if oss_settings is None:
            return None
        # Imported here so a local-only gateway never pays for oss2 or boto3.
        from .oss import OssStore

        store: RemoteStore = OssStore(oss_settings)
        log.info("storage: OSS bucket %s at %s", oss_settings.bucket, oss_settings.endpoint)
        return store
    if provider in ("r2", "s3"):
        s3_settings = load_s3_settings(env, provider)
        from .s3 import S3Store

        store = S3Store(s3_settings)
        log.info(
            "storage: %s bucket %s at %s",
            provider,
            s3_settings.bucket,
            s3_settings.endpoint_url or "AWS",
        )
        return store
    return None
