"""Settings: every variable read in one pass, converted and checked, into frozen sections.

`Settings.from_env(mapping)` is the only reader of configuration; it reads the
mapping it is given and nothing else. A `.env` file is applied to the process
environment by `load_env_file()`, which only the entry points call (`wsgi.py`,
`app.py`, `gunicorn.conf.py`), so tests and libraries see only what they are given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

from dotenv import dotenv_values

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
from .reader import VARIABLES, ConfigError, Reader, declare
from .sections import (
    DEFAULT_COMFYUI_URL,
    ComfySettings,
    EventSettings,
    InputSettings,
    RunSettings,
    ServiceSettings,
    WebhookSettings,
    read_comfy,
    read_events,
    read_inputs,
    read_runs,
    read_service,
    read_webhooks,
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
    "EventSettings",
    "InputSettings",
    "OssSettings",
    "RetentionSettings",
    "RunSettings",
    "S3Settings",
    "ServiceSettings",
    "Settings",
    "StorageSettings",
    "UploadSettings",
    "WebhookSettings",
    "load_env_file",
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

DEFAULT_ENV_FILE = ".env"
declare("ENV_FILE")


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
    events: EventSettings = field(default_factory=EventSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)

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
            inputs=read_inputs(reader, service.file_mounts),
            storage=read_storage(reader),
            uploads=read_uploads(reader),
            retention=read_retention(reader),
            runs=read_runs(reader, service.generation_timeout),
            events=read_events(reader),
            webhooks=read_webhooks(reader),
        )


def load_env_file(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Add the variables of the file named by `ENV_FILE` (default `.env`) to the environment.

    Variables already set always win over the file. `ENV_FILE=` (empty) loads
    nothing, and so does a missing default `.env`. Returns the path loaded, if any.

    :raises ConfigError: when `ENV_FILE` names a file that does not exist.
    """
    environ = os.environ if environ is None else environ
    path = environ.get("ENV_FILE", DEFAULT_ENV_FILE).strip()
    if not path:
        return None
    if not os.path.isfile(path):
        if "ENV_FILE" in environ:
            raise ConfigError(f"ENV_FILE={path!r} is invalid: no such file")
        return None
    for name, value in dotenv_values(path).items():
        if value is not None:
            environ.setdefault(name, value)
    return path
