"""`.env` files: applied by `load_env_file()`, at the entry points only, never over the shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from comfysync import create_app
from comfysync.config import ConfigError, load_env_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_env(folder, text: str, name: str = ".env") -> str:
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def test_values_are_added_without_overriding_real_variables(tmp_path) -> None:
    path = write_env(tmp_path, "API_KEYS=from-file\nGENERATION_TIMEOUT=90\n", "site.env")
    environ = {"ENV_FILE": path, "API_KEYS": "real"}

    assert load_env_file(environ) == path

    assert environ["API_KEYS"] == "real"
    assert environ["GENERATION_TIMEOUT"] == "90"


def test_default_is_dot_env_in_the_working_directory(tmp_path, monkeypatch) -> None:
    write_env(tmp_path, "FLASK_PORT=5123\n")
    monkeypatch.chdir(tmp_path)
    environ: dict[str, str] = {}

    assert load_env_file(environ) == ".env"

    assert environ == {"FLASK_PORT": "5123"}


def test_default_target_is_the_process_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FLASK_PORT", "placeholder")
    monkeypatch.delenv("FLASK_PORT")  # restored to unset after the test
    monkeypatch.setenv("ENV_FILE", write_env(tmp_path, "FLASK_PORT=5123\n"))

    load_env_file()

    assert os.environ["FLASK_PORT"] == "5123"


def test_empty_env_file_loads_nothing(tmp_path, monkeypatch) -> None:
    write_env(tmp_path, "FLASK_PORT=5123\n")
    monkeypatch.chdir(tmp_path)
    environ = {"ENV_FILE": ""}

    assert load_env_file(environ) is None

    assert environ == {"ENV_FILE": ""}


def test_missing_default_file_is_fine(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_env_file({}) is None


def test_missing_named_file_is_an_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="ENV_FILE="):
        load_env_file({"ENV_FILE": str(tmp_path / "nowhere.env")})


def test_create_app_reads_no_env_file(tmp_path, monkeypatch) -> None:
    write_env(tmp_path, "GENERATION_TIMEOUT=nonsense\nAPI_KEYS=secret\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKFLOWS_DIR", str(tmp_path))
    monkeypatch.setenv("OUTPUT_DIR", str(tmp_path / "out"))

    app = create_app()

    assert app.extensions["comfysync"].settings.service.api_keys == ()
    assert "GENERATION_TIMEOUT" not in os.environ


def gunicorn_config(cwd, **env: str) -> dict[str, object]:
    """gunicorn.conf.py's settings, evaluated in `cwd` as gunicorn would (in a fresh process)."""
    code = (
        "import json, runpy, sys; ns = runpy.run_path(sys.argv[1]); "
        "print(json.dumps({k: ns[k] for k in ('bind', 'workers', 'accesslog', 'timeout')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, os.path.join(ROOT, "gunicorn.conf.py")],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": ROOT, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_gunicorn_conf_reads_the_env_file_through_settings(tmp_path) -> None:
    write_env(tmp_path, "FLASK_HOST=10.1.2.3\nFLASK_PORT=5123\nWEB_CONCURRENCY=3\nACCESS_LOG=\n")

    config = gunicorn_config(tmp_path, FLASK_HOST="127.0.0.1")

    assert config == {"bind": "127.0.0.1:5123", "workers": 3, "accesslog": None, "timeout": 30}


def test_gunicorn_conf_with_empty_env_file_reads_none(tmp_path) -> None:
    write_env(tmp_path, "FLASK_PORT=5123\nGENERATION_TIMEOUT=nonsense\n")

    config = gunicorn_config(tmp_path, ENV_FILE="")

    assert config == {"bind": "0.0.0.0:5000", "workers": 1, "accesslog": "-", "timeout": 30}
