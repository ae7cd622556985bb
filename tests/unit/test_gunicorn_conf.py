"""gunicorn.conf.py's hooks, called with stand-ins for gunicorn's server and worker."""

from __future__ import annotations

import logging
import os
import runpy
from types import SimpleNamespace
from typing import Any

import pytest

from comfysync import create_app

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = SimpleNamespace(log=logging.getLogger("gunicorn.error"))


@pytest.fixture
def conf(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The names gunicorn.conf.py defines, read without any `.env` file."""
    monkeypatch.setenv("ENV_FILE", "")
    return runpy.run_path(os.path.join(ROOT, "gunicorn.conf.py"))


def test_worker_exit_closes_the_gateway(conf, tmp_path) -> None:
    app = create_app(
        {
            "WORKFLOWS_DIR": str(tmp_path),
            "OUTPUT_DIR": str(tmp_path / "out"),
            "DATA_DIR": str(tmp_path / "data"),
            "COMFYUI_URL": "http://127.0.0.1:9",
            "OUTPUT_RETENTION_HOURS": "1",
        }
    )
    gateway = app.extensions["comfysync"]
    gateway.start()  # as post_worker_init does: the watcher, dispatcher and pruner run
    watcher = gateway.backend().watcher
    assert len(watcher.background.group) and len(gateway.pruner.background.group)
    assert len(gateway.dispatcher.background.group)

    conf["worker_exit"](SERVER, SimpleNamespace(wsgi=app, pid=1234))

    assert len(watcher.background.group) == 0
    assert len(gateway.pruner.background.group) == 0
    assert len(gateway.dispatcher.background.group) == 0


@pytest.mark.parametrize(
    "worker",
    [
        SimpleNamespace(pid=1),  # in the master: the app was never loaded
        SimpleNamespace(wsgi=lambda environ, start_response: [], pid=1),  # a failed load
    ],
    ids=["never-loaded", "fail-app"],
)
def test_worker_exit_without_a_gateway_does_nothing(conf, worker) -> None:
    conf["worker_exit"](SERVER, worker)
