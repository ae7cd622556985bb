"""Storage settings: where outputs go and how remote backends behave.

Defined and read from the environment in `comfysync.config.storage`, with every
other setting in one pass; kept importable here for the storage code.
"""

from __future__ import annotations

from ..config.storage import (
    DEFAULT_BASE_PATH,
    OSS_DEFAULT_URL_EXPIRES,
    PRESIGN_MAX_EXPIRES,
    PROVIDERS,
    ClientSettings,
    OssSettings,
    RetentionSettings,
    S3Settings,
    StorageSettings,
    UploadSettings,
)

__all__ = [
    "DEFAULT_BASE_PATH",
    "OSS_DEFAULT_URL_EXPIRES",
    "PRESIGN_MAX_EXPIRES",
    "PROVIDERS",
    "ClientSettings",
    "OssSettings",
    "RetentionSettings",
    "S3Settings",
    "StorageSettings",
    "UploadSettings",
]
