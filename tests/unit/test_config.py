"""Settings from the environment: defaults, aliases and one clear message per bad value."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys

import pytest

from comfysync.config import VARIABLES, ConfigError, Settings
from comfysync.config.reader import Reader

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, ".env.example")


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.comfy.url == "http://127.0.0.1:8188"
    assert settings.comfy.max_inflight == 2
    assert settings.service.generation_timeout == 600
    assert settings.service.cancel_on_disconnect is True
    assert settings.service.cancel_on_timeout is False
    assert settings.service.api_keys == ()
    assert settings.storage.provider == "local"
    assert settings.storage.oss is None and settings.storage.s3 is None


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.comfy = settings.comfy  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.service.port = 1  # type: ignore[misc]


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
    assert Settings.from_env(env).comfy.url == url


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GENERATION_TIMEOUT", "soon"),
        ("GENERATION_TIMEOUT", "-1"),
        ("FLASK_PORT", "99999"),
        ("CANCEL_ON_DISCONNECT", "maybe"),
        ("COMFYUI_URL", "ftp://x"),
        ("COMFYUI_SERVER", "http://host:port"),
        ("MAX_CONTENT_LENGTH", "lots"),
        ("LOG_LEVEL", "LOUD"),
        ("COMFYUI_MAX_INFLIGHT", "-1"),
        ("WEB_CONCURRENCY", "0"),
        ("WORKER_CONNECTIONS", "many"),
        ("GUNICORN_TIMEOUT", "-1"),
        ("GUNICORN_BACKLOG", "big"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("REDIS_URL", "redis://"),
        ("REDIS_URL", "unix://"),
        ("RUN_TIMEOUT", "0"),
        ("RUN_MAX_ATTEMPTS", "0"),
        ("MAX_QUEUED_RUNS", "-1"),
        ("RUN_RETENTION_HOURS", "0"),
        ("SYNC_WAIT_MAX", "forever"),
        ("RUN_RETRY_BASE", "-1"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}="):
        Settings.from_env({name: value})


def test_sizes_and_lists() -> None:
    service = Settings.from_env({"MAX_CONTENT_LENGTH": "10M", "API_KEYS": " a, b ,,"}).service
    assert service.max_content_length == 10 << 20
    assert service.api_keys == ("a", "b")


def test_stall_timeout_must_exceed_ping_interval() -> None:
    with pytest.raises(ConfigError, match="WS_STALL_TIMEOUT"):
        Settings.from_env({"WS_PING_INTERVAL": "5", "WS_STALL_TIMEOUT": "5"})


def test_gunicorn_knobs() -> None:
    service = Settings.from_env({}).service
    assert (service.workers, service.worker_connections) == (1, 10000)
    assert (service.gunicorn_timeout, service.backlog) == (30, 2048)
    assert (service.access_log, service.control_socket) == ("-", "")
    service = Settings.from_env(
        {
            "WEB_CONCURRENCY": "4",
            "WORKER_CONNECTIONS": "500",
            "GUNICORN_TIMEOUT": "0",
            "GUNICORN_BACKLOG": "8192",
            "ACCESS_LOG": "/var/log/access.log",
            "GUNICORN_CONTROL_SOCKET": "/run/gunicorn.ctl",
            "GRACEFUL_TIMEOUT": "12",
        }
    ).service
    assert (service.workers, service.worker_connections) == (4, 500)
    assert (service.gunicorn_timeout, service.backlog) == (0, 8192)
    assert service.access_log == "/var/log/access.log"
    assert service.control_socket == "/run/gunicorn.ctl"
    assert service.shutdown_grace == 12


def test_empty_access_log_turns_it_off() -> None:
    assert Settings.from_env({"ACCESS_LOG": ""}).service.access_log is None


def test_runs_section() -> None:
    runs = Settings.from_env({}).runs
    assert (runs.data_dir, runs.redis_url) == ("data", "")
    assert (runs.timeout, runs.sync_wait_max) == (600, 600)
    assert (runs.max_attempts, runs.max_queued, runs.retention_hours) == (3, 1000, 168)
    assert runs.retry_base == 1.0


def test_run_waits_default_to_the_generation_timeout() -> None:
    runs = Settings.from_env({"GENERATION_TIMEOUT": "90"}).runs
    assert (runs.timeout, runs.sync_wait_max) == (90, 90)
    runs = Settings.from_env(
        {"GENERATION_TIMEOUT": "90", "RUN_TIMEOUT": "3600", "SYNC_WAIT_MAX": "30"}
    ).runs
    assert (runs.timeout, runs.sync_wait_max) == (3600, 30)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:secret@cache.example:6380", "unix:///tmp/r.sock"]
)
def test_redis_urls(url: str) -> None:
    assert Settings.from_env({"REDIS_URL": f" {url} "}).runs.redis_url == url


def test_reader_refuses_a_variable_nobody_declared() -> None:
    with pytest.raises(LookupError, match="NOT_A_SETTING"):
        Reader({"NOT_A_SETTING": "1"}).raw("NOT_A_SETTING")


def test_every_variable_is_documented_in_env_example() -> None:
    with open(EXAMPLE, encoding="utf-8") as handle:
        documented = set(re.findall(r"\b[A-Z][A-Z0-9_]+\b", handle.read()))
    assert sorted(VARIABLES - documented) == []


def test_config_loads_no_network_library() -> None:
    """gunicorn.conf.py reads settings in the master, before the gevent worker patches ssl.

    urllib3 imported there first made boto3 fail in the workers with RecursionError.
    """
    code = (
        "import sys, comfysync.config; "
        "print(sorted(set(sys.modules) & {'urllib3', 'requests', 'boto3', 'oss2', 'PIL'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_env_example_is_a_working_configuration(tmp_path) -> None:
    """Copying .env.example to .env must give a service that starts on local storage."""
    from dotenv import dotenv_values

    from comfysync.gateway import Gateway

    env = {key: value or "" for key, value in dotenv_values(EXAMPLE).items()}
    env["OUTPUT_DIR"] = str(tmp_path)
    env["DATA_DIR"] = str(tmp_path)
    gateway = Gateway(Settings.from_env(env))
    assert gateway.settings.comfy.url == "http://127.0.0.1:8188"
    assert gateway.remote is None
    assert set(env) >= {"COMFYUI_URL", "GENERATION_TIMEOUT", "API_KEYS", "STORAGE_PROVIDER"}
    gateway.close()
