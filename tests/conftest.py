"""Fixtures shared by the whole suite: a clean environment and free ports."""

from __future__ import annotations

import pytest

# Variables the gateway reads: tests never inherit them from the developer's shell.
_GATEWAY_VARS = (
    "COMFYUI_URL",
    "COMFYUI_BASE_URL",
    "COMFYUI_SERVER",
    "SERVER_BASE_URL",
    "API_KEYS",
    "ENABLE_OSS",
    "STORAGE_PROVIDER",
    "GENERATION_TIMEOUT",
    "FLASK_PORT",
    "FLASK_HOST",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from the embedded defaults, whatever the shell has set."""
    for name in _GATEWAY_VARS:
        monkeypatch.delenv(name, raising=False)
