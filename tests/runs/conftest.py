"""Fixtures of the run store contract suite: every test runs on each backend."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from comfysync.runs import RunStore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKENDS = ("sqlite",)


@pytest.fixture(params=BACKENDS)
def store_spec(request: pytest.FixtureRequest, tmp_path) -> tuple[str, str]:
    """(backend, target): a fresh SQLite path."""
    return "sqlite", str(tmp_path / "data" / "runs.sqlite3")


def open_store(kind: str, target: str, **options: Any) -> RunStore:
    """The store a spec names, as the gateway or another process would open it."""
    from comfysync.runs.sqlite import SqliteRunStore

    assert kind == "sqlite", kind
    return SqliteRunStore(target, **options)


@pytest.fixture
def store(store_spec: tuple[str, str]) -> Iterator[RunStore]:
    """The backend under test, closed afterwards."""
    opened = open_store(*store_spec)
    yield opened
    opened.close()


def peer(*args: str) -> subprocess.Popen[str]:
    """Another process on the same store: `python -m tests.runs.peer ARGS` (see peer.py)."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.runs.peer", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
