"""A new user's `.env`, full of wrong values, never reaches the tests or their gateways.

The project is copied to a temporary folder with such a `.env` at its root, and
part of the suite (in-process apps and gunicorn gateways) runs there in a
subprocess. The part chosen never includes this file, so the copy cannot
start another copy.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from .harness import ROOT

pytestmark = pytest.mark.e2e

COPIED = (
    "comfysync",
    "tests",
    "workflows",
    "wsgi.py",
    "app.py",
    "gunicorn.conf.py",
    "pyproject.toml",
)
SUBSET = ("tests/unit/test_app.py", "tests/e2e/test_endpoints.py")

# What a new user ends up with: `cp .env.example .env`, then a few edits.
HOSTILE = {
    "STORAGE_PROVIDER": "oss",
    "ENABLE_OSS": "true",
    "OSS_ACCESS_KEY_ID": "hostile-key-id",
    "OSS_ACCESS_KEY_SECRET": "hostile-secret",
    "OSS_ENDPOINT": "http://127.0.0.1:9",
    "OSS_BUCKET_NAME": "hostile-bucket",
    "API_KEYS": "secret",
    "COMFYUI_URL": "http://127.0.0.1:9",
    "GENERATION_TIMEOUT": "nonsense",
    "WORKFLOWS_DIR": "/nonexistent/workflows",
    "WEB_CONCURRENCY": "nonsense",
}


def hostile_env_file() -> str:
    """`.env.example` with the values of HOSTILE put in (and appended where missing)."""
    lines = []
    seen = set()
    with open(os.path.join(ROOT, ".env.example"), encoding="utf-8") as handle:
        for line in handle.read().splitlines():
            name = line.split("=", 1)[0]
            if "=" in line and name in HOSTILE:
                line = f"{name}={HOSTILE[name]}"
                seen.add(name)
            lines.append(line)
    lines += [f"{name}={value}" for name, value in HOSTILE.items() if name not in seen]
    return "\n".join(lines) + "\n"


def test_suite_passes_with_a_hostile_env_file(tmp_path) -> None:
    assert not any(path.endswith(os.path.basename(__file__)) for path in SUBSET)
    copy = tmp_path / "project"
    for name in COPIED:
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
            shutil.copytree(source, copy / name, ignore=ignore)
        else:
            shutil.copy2(source, copy / name)
    (copy / ".env").write_text(hostile_env_file(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *SUBSET],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    summary = output.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 20, summary
    assert not re.search(r"skipped|deselected|error", summary), summary
