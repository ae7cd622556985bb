"""build_run_store: SQLite by default, Redis when a URL is given, redis imported only then."""

from __future__ import annotations

import os
import subprocess
import sys

from comfysync.runs import SqliteRunStore, build_run_store

from .conftest import ROOT


def test_sqlite_in_the_data_folder_by_default(tmp_path) -> None:
    store = build_run_store(str(tmp_path / "data"))
    try:
        assert isinstance(store, SqliteRunStore)
        assert store.path == str(tmp_path / "data" / "runs.sqlite3")
    finally:
        store.close()


def test_redis_when_a_url_is_given(redis_url: str) -> None:
    from comfysync.runs.redis import RedisRunStore

    store = build_run_store("unused", redis_url)
    try:
        assert isinstance(store, RedisRunStore)
        assert store.queued_count() == 0
    finally:
        store.close()


def test_the_default_never_imports_redis(tmp_path) -> None:
    code = (
        "import sys; from comfysync.runs import build_run_store; "
        f"build_run_store({str(tmp_path)!r}).close(); print('redis' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "False"
