"""Settings: read once from the environment (and `.env`), converted and checked."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

from dotenv import load_dotenv

T = TypeVar("T")

DEFAULT_COMFYUI_URL = "http://127.0.0.1:8188"


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


# -- converters: each takes the raw string and returns the value or raises ValueError --

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def to_bool(raw: str) -> bool:
    """Parse the usual spellings of a boolean flag."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected true/false")


def to_positive_float(raw: str) -> float:
    """Parse a number of seconds (or any quantity) that must be above zero."""
    value = float(raw)
    if not value > 0:
        raise ValueError("must be greater than 0")
    return value


def to_port(raw: str) -> int:
    """Parse a TCP port number."""
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")
    return value


def to_size(raw: str) -> int:
    """Parse a byte count, with an optional K/M/G suffix (binary multiples)."""
    value = raw.strip().upper().removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(value[-1:], 1)
    number = int(float(value[:-1] if scale > 1 else value) * scale)
    if number <= 0:
        raise ValueError("must be a positive size such as 50M")
    return number


def to_list(raw: str) -> tuple[str, ...]:
    """Split a comma-separated list, dropping blanks."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def to_http_url(raw: str) -> str:
    """Normalise an http(s) base URL; a bare `host:port` gets `http://`."""
    value = raw.strip().rstrip("/")
    if "://" not in value:
        value = "http://" + value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http(s) URL such as http://127.0.0.1:8188")
    parts.port  # noqa: B018 - raises ValueError on a malformed port
    return value


def to_log_level(raw: str) -> str:
    """Accept a standard logging level name."""
    value = raw.strip().upper()
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return value


@dataclass(frozen=True)
class Settings:
    """Every setting of the gateway; built by `from_env`, overridden in tests."""

    comfyui_url: str = DEFAULT_COMFYUI_URL
    server_base_url: str = ""
    flask_host: str = "0.0.0.0"
    flask_port: int = 5000
    flask_debug: bool = False
    log_level: str = "INFO"
    log_workflows: bool = False

    workflows_dir: str = "workflows"
    output_dir: str = "output_images"

    generation_timeout: float = 600.0
    cancel_on_disconnect: bool = True
    cancel_on_timeout: bool = False
    comfyui_connect_timeout: float = 5.0
    comfyui_read_timeout: float = 30.0
    comfyui_retries: int = 2
    max_content_length: int = 50 << 20
    api_keys: tuple[str, ...] = ()

    comfyui_output_dir: str = ""
    comfyui_cleanup_outputs: bool = False

    ws_ping_interval: float = 10.0
    ws_stall_timeout: float = 25.0
    ws_reconnect_max_delay: float = 5.0
    reconcile_interval: float = 15.0
    shutdown_grace: float = 30.0

    # Storage backends read their own variables (see `comfysync.storage`).
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from `env` (default: the process environment after `.env`).

        :raises ConfigError: naming the first variable whose value is unusable.
        """
        if env is None:
            load_dotenv(override=False)  # the real environment always wins
            env = os.environ
        reader = _Reader(env)
        comfy_raw = reader.first("COMFYUI_URL", "COMFYUI_BASE_URL", "COMFYUI_SERVER")
        settings = cls(
            comfyui_url=reader.convert(comfy_raw[0], comfy_raw[1], to_http_url)
            if comfy_raw
            else DEFAULT_COMFYUI_URL,
            server_base_url=reader.get("SERVER_BASE_URL", "", to_http_url_or_empty),
            flask_host=reader.get("FLASK_HOST", cls.flask_host, str.strip),
            flask_port=reader.get("FLASK_PORT", cls.flask_port, to_port),
            flask_debug=reader.get("FLASK_DEBUG", False, to_bool),
            log_level=reader.get("LOG_LEVEL", cls.log_level, to_log_level),
            log_workflows=reader.get("LOG_WORKFLOWS", False, to_bool),
            workflows_dir=reader.get("WORKFLOWS_DIR", cls.workflows_dir, str.strip),
            output_dir=reader.get("OUTPUT_DIR", cls.output_dir, str.strip),
            generation_timeout=reader.get(
                "GENERATION_TIMEOUT", cls.generation_timeout, to_positive_float
            ),
            cancel_on_disconnect=reader.get("CANCEL_ON_DISCONNECT", True, to_bool),
            cancel_on_timeout=reader.get("CANCEL_ON_TIMEOUT", False, to_bool),
            comfyui_connect_timeout=reader.get(
                "COMFYUI_CONNECT_TIMEOUT", cls.comfyui_connect_timeout, to_positive_float
            ),
            comfyui_read_timeout=reader.get(
                "COMFYUI_READ_TIMEOUT", cls.comfyui_read_timeout, to_positive_float
            ),
            comfyui_retries=reader.get("COMFYUI_RETRIES", cls.comfyui_retries, _to_count),
            max_content_length=reader.get("MAX_CONTENT_LENGTH", cls.max_content_length, to_size),
            api_keys=reader.get("API_KEYS", (), to_list),
            comfyui_output_dir=reader.get("COMFYUI_OUTPUT_DIR", "", str.strip),
            comfyui_cleanup_outputs=reader.get("COMFYUI_CLEANUP_OUTPUTS", False, to_bool),
            ws_ping_interval=reader.get(
                "WS_PING_INTERVAL", cls.ws_ping_interval, to_positive_float
            ),
            ws_stall_timeout=reader.get(
                "WS_STALL_TIMEOUT", cls.ws_stall_timeout, to_positive_float
            ),
            ws_reconnect_max_delay=reader.get(
                "WS_RECONNECT_MAX_DELAY", cls.ws_reconnect_max_delay, to_positive_float
            ),
            reconcile_interval=reader.get(
                "RECONCILE_INTERVAL", cls.reconcile_interval, to_positive_float
            ),
            shutdown_grace=reader.get("GRACEFUL_TIMEOUT", cls.shutdown_grace, to_positive_float),
            env=dict(env),
        )
        if settings.ws_stall_timeout <= settings.ws_ping_interval:
            raise ConfigError(
                "WS_STALL_TIMEOUT must be longer than WS_PING_INTERVAL "
                f"(got {settings.ws_stall_timeout} <= {settings.ws_ping_interval})"
            )
        return replace(settings, **overrides) if overrides else settings

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        """Return a copy with some fields replaced (unknown names are an error)."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **overrides)


def to_http_url_or_empty(raw: str) -> str:
    """Like `to_http_url`, but an empty value means 'not set'."""
    return to_http_url(raw) if raw.strip() else ""


def _to_count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


class _Reader:
    """Looks variables up and wraps converter failures in a ConfigError."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def first(self, *names: str) -> tuple[str, str] | None:
        for name in names:
            value = self.env.get(name, "").strip()
            if value:
                return name, value
        return None

    def get(self, name: str, default: T, convert: Callable[[str], T]) -> T:
        raw = self.env.get(name)
        if raw is None or raw.strip() == "":
            return default
        return self.convert(name, raw, convert)

    @staticmethod
    def convert(name: str, raw: str, convert: Callable[[str], T]) -> T:
        try:
            return convert(raw)
        except ValueError as err:
            raise ConfigError(f"{name}={raw!r} is invalid: {err}") from err
