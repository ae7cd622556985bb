"""Settings: every variable read in one pass, converted and checked, into frozen sections.

`Settings.from_env(mapping)` is the only reader of configuration; it reads the
mapping it is given and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .convert import (
    to_bool,
    to_count,
    to_http_url,
    to_list,
    to_log_level,
    to_port,
    to_positive_float,
    to_positive_int,
    to_seconds_or_zero,
    to_size,
)
from .reader import VARIABLES, ConfigError, Reader
from .sections import (
    DEFAULT_COMFYUI_URL,
    ComfySettings,
    InputSettings,
    RunSettings,
    ServiceSettings,
    read_comfy,
    read_inputs,
    read_runs,
    read_service,
)
from .storage import (
    ClientSettings,
    OssSettings,
    RetentionSettings,
    S3Settings,
    StorageSettings,
    UploadSettings,
    read_retention,
    read_storage,
    read_uploads,
)

__all__ = [
    "DEFAULT_COMFYUI_URL",
    "VARIABLES",
    "ClientSettings",
    "ComfySettings",
    "ConfigError",
    "InputSettings",
    "OssSettings",
    "RetentionSettings",
    "RunSettings",
    "S3Settings",
    "ServiceSettings",
    "Settings",
    "StorageSettings",
    "UploadSettings",
    "to_bool",
    "to_count",
    "to_http_url",
    "to_list",
    "to_log_level",
    "to_port",
    "to_positive_float",
    "to_positive_int",
    "to_seconds_or_zero",
    "to_size",
]


@dataclass(frozen=True)
class Settings:
    """Every setting of the gateway, by section; built by `from_env`."""

    comfy: ComfySettings = field(default_factory=ComfySettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    uploads: UploadSettings = field(default_factory=UploadSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    inputs: InputSettings = field(default_factory=InputSettings)
    runs: RunSettings = field(default_factory=RunSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build every section from `env` (variable names to strings); unset ones keep defaults.

        :raises ConfigError: naming the first variable whose value is unusable.
        """
        reader = Reader(env)
        service = read_service(reader)
        return cls(
            comfy=read_comfy(reader),
            service=service,
            inputs=read_inputs(reader),
            storage=read_storage(reader),
            uploads=read_uploads(reader),
            retention=read_retention(reader),
            runs=read_runs(reader, service.generation_timeout),
        )
