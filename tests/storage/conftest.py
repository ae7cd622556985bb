"""Fixtures for the storage tests: an isolated AWS environment and stored files."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from comfysync.storage import LocalDiskStore, StoredFile

from .fakes import PROMPT_ID, png_bytes


@pytest.fixture(autouse=True)
def isolated_aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No developer profile, credential or metadata service can leak into a test."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "BOTO_")):
            monkeypatch.delenv(name)
    empty = tmp_path_factory.mktemp("aws")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def local_store(tmp_path) -> LocalDiskStore:
    """Local storage in a temporary folder, served at http://gateway.test."""
    return LocalDiskStore(str(tmp_path / "output_images"), base_url="http://gateway.test")


@pytest.fixture
def stored(local_store: LocalDiskStore) -> StoredFile:
    """One PNG already written locally, as the gateway does before any upload."""
    key = f"2026-01-02/{PROMPT_ID}-9-0-abc123.png"
    return local_store.write(key, [png_bytes({"prompt": "{}"})], "image/png")


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port
