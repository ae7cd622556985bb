"""Settings from the environment: defaults, aliases and one clear message per bad value."""

from __future__ import annotations

import os

import pytest

from comfysync.config import ConfigError, Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.comfyui_url == "http://127.0.0.1:8188"
    assert settings.generation_timeout == 600
    assert settings.cancel_on_disconnect is True
    assert settings.cancel_on_timeout is False
    assert settings.api_keys == ()


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({"COMFYUI_URL": "http://a:1/"}, "http://a:1"),
        ({"COMFYUI_BASE_URL": "https://b"}, "https://b"),
        ({"COMFYUI_SERVER": "10.0.0.5:8188"}, "http://10.0.0.5:8188"),
        ({"COMFYUI_URL": "http://first:1", "COMFYUI_SERVER": "second:2"}, "http://first:1"),
        ({"COMFYUI_URL": "", "COMFYUI_BASE_URL": "http://base:3"}, "http://base:3"),
    ],
)
def test_comfyui_address_aliases(env: dict[str, str], url: str) -> None:
    assert Settings.from_env(env).comfyui_url == url


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GENERATION_TIMEOUT", "soon"),
        ("GENERATION_TIMEOUT", "-1"),
        ("FLASK_PORT", "99999"),
        ("CANCEL_ON_DISCONNECT", "maybe"),
        ("COMFYUI_URL", "ftp://x"),
        ("MAX_CONTENT_LENGTH", "lots"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_sizes_and_lists() -> None:
    settings = Settings.from_env({"MAX_CONTENT_LENGTH": "10M", "API_KEYS": " a, b ,,"})
    assert settings.max_content_length == 10 << 20
    assert settings.api_keys == ("a", "b")


def test_stall_timeout_must_exceed_ping_interval() -> None:
    with pytest.raises(ConfigError, match="WS_STALL_TIMEOUT"):
        Settings.from_env({"WS_PING_INTERVAL": "5", "WS_STALL_TIMEOUT": "5"})


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="nonsense"):
        Settings.from_env({}).with_overrides({"nonsense": 1})


def test_env_example_is_a_working_configuration(tmp_path) -> None:
    """Copying .env.example to .env must give a service that starts on local storage."""
    from dotenv import dotenv_values

    from comfysync.gateway import Gateway

    example = os.path.join(os.path.dirname(__file__), "..", "..", ".env.example")
    env = {key: value or "" for key, value in dotenv_values(example).items()}
    env["OUTPUT_DIR"] = str(tmp_path)
    gateway = Gateway(Settings.from_env(env))
    assert gateway.settings.comfyui_url == "http://127.0.0.1:8188"
    assert gateway.remote is None
    assert set(env) >= {"COMFYUI_URL", "GENERATION_TIMEOUT", "API_KEYS", "STORAGE_PROVIDER"}
