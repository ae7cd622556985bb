"""Gateways for the input and output tests: no inherited settings, no way off loopback."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import pytest

from .harness import Gateway

GUARD_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loopback_guard")

# Settings these tests choose themselves: never taken from the developer's shell.
_DROPPED_PREFIXES = (
    "AWS_",
    "BOTO_",
    "OSS_",
    "SPACES_",
    "R2_",
    "STORAGE_",
    "INPUT_",
    "UPLOAD_",
    "OUTPUT_RETENTION_",
    "PRESIGN_",
    "ENABLE_OSS",
    "SERVER_BASE_URL",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)

StartGateway = Callable[..., Gateway]


def isolated_gateway(comfy_url: str, **env: str) -> Gateway:
    """A gateway (not started yet) whose storage, AWS and input settings are only `env`.

    Its process runs under the loopback guard (see `loopback_guard/sitecustomize.py`):
    a connection to any address outside loopback is refused and written to
    `guard_log(gateway)`.
    """
    gateway = Gateway(comfy_url)
    kept = {k: v for k, v in gateway.env.items() if not k.startswith(_DROPPED_PREFIXES)}
    empty = os.path.join(gateway.workdir, "aws")
    python_path = os.pathsep.join(p for p in (GUARD_DIR, kept.get("PYTHONPATH", "")) if p)
    gateway.env = {
        **kept,
        # No profile, credentials file or instance metadata can be picked up.
        "AWS_CONFIG_FILE": os.path.join(empty, "config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(empty, "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONPATH": python_path,
        "LOOPBACK_GUARD_LOG": guard_log(gateway),
        **env,
    }
    return gateway


def guard_log(gateway: Gateway) -> str:
    """The file where the guard lists refused connections of `gateway`."""
    return os.path.join(gateway.workdir, "outside-connections.log")


def outside_connections(gateway: Gateway) -> list[str]:
    """Addresses outside loopback that the gateway tried to connect to (and was refused)."""
    try:
        with open(guard_log(gateway), encoding="utf-8") as handle:
            return handle.read().split()
    except FileNotFoundError:
        return []


@pytest.fixture
def start_gateway() -> Iterator[StartGateway]:
    """Start isolated gateways for one test; each is stopped afterwards."""
    started: list[Gateway] = []

    def start(comfy_url: str, **env: str) -> Gateway:
        gateway = isolated_gateway(comfy_url, **env)
        started.append(gateway)
        return gateway.start()

    yield start
    for gateway in started:
        stop_quickly(gateway)


def stop_quickly(gateway: Gateway) -> None:
    """Stop without the graceful wait (gunicorn's SIGINT): these tests are not about shutdown."""
    gateway.stop(signal.SIGINT)
