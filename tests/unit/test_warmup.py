"""WARMUP_WORKFLOW: its setting, and the claims that make one worker of a start warm each server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from comfysync.config import ConfigError, Settings
from comfysync.warmup.claims import Claims

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {}}}


@pytest.fixture
def workflows(tmp_path: Path) -> Path:
    root = tmp_path / "workflows"
    (root / "warm").mkdir(parents=True)
    (root / "warm" / "v1.json").write_text(json.dumps(GRAPH))
    (root / "warm" / "aliases.json").write_text('{"production": "v1"}')
    (root / "plain.json").write_text(json.dumps(GRAPH))
    (root / "broken.json").write_text("{not json")
    return root


@pytest.mark.parametrize("ref", ["plain", "warm", "warm@production", "warm@v1"])
def test_the_setting_takes_any_stored_reference(workflows: Path, ref: str) -> None:
    env = {"WORKFLOWS_DIR": str(workflows), "WARMUP_WORKFLOW": f" {ref} "}
    assert Settings.from_env(env).service.warmup_workflow == ref


def test_no_warmup_by_default() -> None:
    assert Settings.from_env({}).service.warmup_workflow == ""


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("nope", "Workflow 'nope' not found"),
        ("warm@staging", "no version or alias 'staging'"),
        ("../plain", "Invalid workflow name"),
        ("broken", "cannot read broken"),
    ],
)
def test_an_unusable_warmup_workflow_fails_at_start(
    workflows: Path, ref: str, fragment: str
) -> None:
    env = {"WORKFLOWS_DIR": str(workflows), "WARMUP_WORKFLOW": ref}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert message.startswith(f"WARMUP_WORKFLOW={ref!r} is invalid")
    assert fragment in message
    if "not found" in fragment:
        assert "broken, plain, warm" in message  # what there is to choose from


def test_checking_it_loads_no_network_library(workflows: Path) -> None:
    """gunicorn's master reads the settings before the gevent worker patches ssl."""
    code = (
        "import sys, os; from comfysync.config import Settings; "
        "Settings.from_env(os.environ); "
        "print(sorted(set(sys.modules) & {'urllib3', 'requests', 'boto3', 'oss2', 'PIL'}))"
    )
    env = {**os.environ, "WORKFLOWS_DIR": str(workflows), "WARMUP_WORKFLOW": "warm"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- claims between workers: other workers are real processes -----------------------------

WORKER = """
import sys
from comfysync.warmup.claims import Claims
claims = Claims(sys.argv[1])
claims.open()
if sys.argv[2] != "-":
    assert claims.claim("gpu1") is None
    claims.record("gpu1", {"status": sys.argv[2]})
print("ready", flush=True)
sys.stdin.readline()
"""


@contextmanager
def other_worker(folder: Path, status: str = "-") -> Iterator[int]:
    """A process of the same start, holding its place until the block ends; yields its pid."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(folder), status],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc.pid
    finally:
        proc.communicate("\n", timeout=10)


def _state(folder: Path) -> dict:
    return json.loads((folder / "servers.json").read_text())


def test_a_fresh_start_warms_again(tmp_path: Path) -> None:
    with other_worker(tmp_path, "done"):
        pass  # the previous start: warmed gpu1, then stopped
    assert _state(tmp_path)["gpu1"]["status"] == "done"
    claims = Claims(str(tmp_path))
    claims.open()
    assert claims.claim("gpu1") is None
    assert _state(tmp_path)["gpu1"] == {"status": "running", "pid": os.getpid()}
    claims.close()


def test_a_worker_that_joins_later_keeps_what_the_others_did(tmp_path: Path) -> None:
    with other_worker(tmp_path, "done") as pid:
        claims = Claims(str(tmp_path))
        claims.open()
        assert claims.claim("gpu1") == {"status": "done", "pid": pid}
        assert claims.claim("gpu2") is None  # a server nobody has claimed yet
        claims.close()


def test_a_live_workers_warmup_is_followed_not_repeated(tmp_path: Path) -> None:
    with other_worker(tmp_path, "running") as pid:
        claims = Claims(str(tmp_path))
        claims.open()
        assert claims.claim("gpu1") == {"status": "running", "pid": pid}
        claims.close()


def test_the_warmup_of_a_dead_worker_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with other_worker(tmp_path):  # keeps the start alive: nothing is cleared
        claims = Claims(str(tmp_path))
        claims.open()
        assert claims.claim("gpu1") is None
        claims.record("gpu1", {"status": "waiting", "error": "comfyui_unavailable"})
        assert claims.claim("gpu1") is None  # our own retry stays ours
        (tmp_path / "servers.json").write_text(
            json.dumps({"gpu1": {"status": "running", "pid": dead.pid}})
        )
        assert claims.claim("gpu1") is None
        assert _state(tmp_path)["gpu1"]["pid"] == os.getpid()
        claims.close()
