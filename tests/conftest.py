"""Fixtures shared by the whole suite: a clean environment and free ports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
