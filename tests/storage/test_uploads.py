"""Parallel uploads of one run: the bound, the order, and the local fallback."""

from __future__ import annotations

import logging
from dataclasses import replace

import gevent
import pytest

from comfysync.config import ConfigError, Settings
from comfysync.errors import StorageError
from comfysync.storage import (
    RemoteStore,
    StoredFile,
    UploadSettings,
    remote_key,
    upload_all,
)

from .fakes import PROMPT_ID, png_bytes


class FakeRemote(RemoteStore):
    """Sleeps cooperatively; fails for keys containing `fail`, hangs for `hang`."""

    name = "fake"

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0

    def upload(self, stored: StoredFile, *, prompt_id: str = "") -> StoredFile:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            gevent.sleep(10 if "hang" in stored.key else 0.02)
            if "fail" in stored.key:
                raise StorageError("bucket said no")
            if "bug" in stored.key:
                raise RuntimeError("unexpected")
            key = remote_key("outputs", stored, prompt_id)
            return replace(stored, url=f"https://cdn.test/{key}", storage=self.name, remote_key=key)
        finally:
            self.running -= 1


@pytest.fixture
def files(local_store):
    """Write local files named after what the fake remote should do with them."""

    def write(*names: str) -> list[StoredFile]:
        return [
            local_store.write(f"2026-01-02/{name}.png", [png_bytes()], "image/png")
            for name in names
        ]

    return write


def test_concurrency_is_bounded_and_order_kept(files) -> None:
    remote = FakeRemote()
    batch = files(*(f"ok{n}" for n in range(7)))

    outcome = upload_all(remote, batch, prompt_id=PROMPT_ID, concurrency=3)

    assert remote.peak == 3
    assert [f.key for f in outcome.files] == [f.key for f in batch]
    assert [f.remote_key for f in outcome.files] == [
        f"outputs/runs/{PROMPT_ID}/ok{n}.png" for n in range(7)
    ]
    assert outcome.warnings == []


def test_failures_keep_the_local_file_and_warn(files, caplog) -> None:
    batch = files("ok", "fail", "bug")

    with caplog.at_level(logging.WARNING, logger="comfysync.storage"):
        outcome = upload_all(FakeRemote(), batch, prompt_id=PROMPT_ID)

    assert [f.storage for f in outcome.files] == ["fake", "local", "local"]
    assert outcome.files[1:] == batch[1:]
    assert len(outcome.warnings) == 2
    assert "bucket said no" in outcome.warnings[0] and "fail.png" in outcome.warnings[0]
    assert "unexpected" in outcome.warnings[1]
    records = [r for r in caplog.records if PROMPT_ID in r.getMessage()]
    assert len(records) == 2
    # A translated StorageError is expected; anything else gets its traceback logged.
    assert not records[0].exc_info and records[1].exc_info


def test_a_hung_upload_is_abandoned_at_the_deadline(files) -> None:
    batch = files("ok", "hang")

    with gevent.Timeout(3):
        outcome = upload_all(FakeRemote(), batch, prompt_id=PROMPT_ID, timeout=0.3)

    assert [f.storage for f in outcome.files] == ["fake", "local"]
    assert "no answer within 0.3s" in outcome.warnings[0]


def test_without_remote_files_come_back_unchanged(files) -> None:
    batch = files("a", "b")

    outcome = upload_all(None, batch, prompt_id=PROMPT_ID)

    assert outcome.files == batch and outcome.warnings == []


def test_remote_key_sanitises_the_prompt_id(stored) -> None:
    name = stored.key.rsplit("/", 1)[1]
    assert remote_key("outputs", stored, "../../etc") == f"outputs/runs/_.._etc/{name}"
    assert remote_key("", stored, "p1") == f"runs/p1/{name}"
    assert remote_key("outputs", stored) == f"outputs/{stored.key}"


def test_upload_settings() -> None:
    assert Settings.from_env({}).uploads == UploadSettings(concurrency=4, timeout=300.0)
    assert Settings.from_env({"UPLOAD_CONCURRENCY": "8"}).uploads.concurrency == 8
    with pytest.raises(ConfigError, match="UPLOAD_CONCURRENCY"):
        Settings.from_env({"UPLOAD_CONCURRENCY": "0"})
