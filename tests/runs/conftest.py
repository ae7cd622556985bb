"""Fixtures of the run store contract suite: every test runs on SQLite and on a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from comfysync.runs import RunStore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKENDS = ("sqlite", "redis")


@pytest.fixture(params=BACKENDS)
def store_spec(request: pytest.FixtureRequest, tmp_path) -> tuple[str, str]:
    """(backend, target): a fresh SQLite path, or the session's Redis, flushed."""
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "data" / "runs.sqlite3")
    url = request.getfixturevalue("redis_url")
    import redis

    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return "redis", url


def open_store(kind: str, target: str, **options: Any) -> RunStore:
    """The store a spec names, as the gateway or another process would open it."""
    if kind == "sqlite":
        from comfysync.runs.sqlite import SqliteRunStore

        return SqliteRunStore(target, **options)
    from comfysync.runs.redis import RedisRunStore

    return RedisRunStore(target, **options)


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
