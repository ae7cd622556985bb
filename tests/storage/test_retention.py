"""Retention: delete old local outputs by age and size, never anything too young."""

from __future__ import annotations

import os
import time

import gevent
import pytest

from comfysync.config import ConfigError, Settings
from comfysync.storage import RetentionPruner, RetentionSettings, prune

HOUR = 3600.0
NOW = time.time()  # real time: the pruner test runs on the real clock


@pytest.fixture
def tree(tmp_path):
    """Create files of a given size and age (hours before NOW) under tmp_path/out."""
    root = tmp_path / "out"
    root.mkdir()

    def make(name: str, size: int, age_hours: float) -> str:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
        stamp = NOW - age_hours * HOUR
        os.utime(path, (stamp, stamp))
        return str(path)

    make.root = str(root)  # type: ignore[attr-defined]
    return make


def remaining(root: str) -> set[str]:
    return {
        os.path.relpath(os.path.join(folder, name), root)
        for folder, _, names in os.walk(root)
        for name in names
    }


def test_max_age_deletes_only_older_files(tree) -> None:
    tree("a/old.png", 10, 50)
    tree("a/edge.png", 10, 23)
    tree("b/new.png", 10, 2)

    result = prune(tree.root, max_age=24 * HOUR, now=NOW)

    assert remaining(tree.root) == {"a/edge.png", "b/new.png"}
    assert (result.deleted, result.freed_bytes, result.remaining_bytes) == (1, 10, 20)


def test_max_bytes_deletes_oldest_first(tree) -> None:
    tree("d1/1.png", 100, 10)
    tree("d1/2.png", 100, 8)
    tree("d2/3.png", 100, 6)
    tree("d2/4.png", 100, 4)

    result = prune(tree.root, max_bytes=250, now=NOW)

    assert remaining(tree.root) == {"d2/3.png", "d2/4.png"}
    assert result.remaining_bytes == 200


def test_never_deletes_files_younger_than_min_age(tree) -> None:
    tree("old.png", 100, 5)
    tree("young1.png", 100, 0.5)
    tree("young2.png", 100, 0.1)

    result = prune(tree.root, max_age=1, max_bytes=1, min_age=HOUR, now=NOW)

    assert remaining(tree.root) == {"young1.png", "young2.png"}
    assert result.deleted == 1 and result.remaining_bytes == 200


def test_default_min_age_is_one_hour(tree) -> None:
    tree("recent.png", 10, 0.9)

    prune(tree.root, max_age=1, now=NOW)

    assert remaining(tree.root) == {"recent.png"}


def test_empty_old_folders_go_but_the_root_stays(tree) -> None:
    tree("2026-01-01/old.png", 10, 50)
    os.utime(os.path.join(tree.root, "2026-01-01"), (NOW - 50 * HOUR,) * 2)
    fresh = os.path.join(tree.root, "2026-01-03")
    os.mkdir(fresh)  # a writer may be about to fill it

    prune(tree.root, max_age=HOUR, now=NOW)
    # Deleting the file touched its folder; a later pass removes it once it is old.
    prune(tree.root, max_age=HOUR, now=time.time() + 2 * HOUR)

    assert os.listdir(tree.root) == []
    assert os.path.isdir(tree.root)


def test_no_limits_deletes_nothing(tree) -> None:
    tree("old.png", 10, 1000)

    assert prune(tree.root, now=NOW).deleted == 0
    assert not RetentionSettings().enabled


def test_pruner_runs_periodically_and_stops(tree) -> None:
    old = tree("old.png", 10, 1000)
    pruner = RetentionPruner(
        tree.root, RetentionSettings(max_age=HOUR, min_age=HOUR, interval=0.05)
    )

    pruner.start()
    gevent.sleep(0.02)
    assert not os.path.exists(old)
    old_again = tree("again.png", 10, 1000)
    gevent.sleep(0.1)
    pruner.stop()

    assert not os.path.exists(old_again)
    assert len(pruner.background.group) == 0


def test_pruner_without_limits_does_not_start(tree) -> None:
    pruner = RetentionPruner(tree.root, RetentionSettings())

    pruner.start()

    assert len(pruner.background.group) == 0


def test_retention_settings_from_env() -> None:
    settings = Settings.from_env(
        {"OUTPUT_RETENTION_HOURS": "48", "OUTPUT_RETENTION_MAX_BYTES": "2G"}
    ).retention

    assert settings.max_age == 48 * HOUR
    assert settings.max_bytes == 2 << 30
    assert settings.min_age == HOUR
    assert settings.enabled


@pytest.mark.parametrize(
    "env",
    [
        {"OUTPUT_RETENTION_HOURS": "0"},
        {"OUTPUT_RETENTION_MAX_BYTES": "lots"},
        {"OUTPUT_RETENTION_MIN_AGE_SECONDS": "-1"},
        {"OUTPUT_RETENTION_INTERVAL_SECONDS": "0"},
    ],
)
def test_bad_retention_settings_name_the_variable(env) -> None:
    with pytest.raises(ConfigError, match=next(iter(env))):
        Settings.from_env(env)
