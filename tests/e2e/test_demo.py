"""`make demo` answers what the README shows: its examples, and every starter workflow.

The setup is the demo's: the simulator with its default settings, the gateway
with the repository's `workflows/`. The README's curl commands are read from
the README itself and sent as curl would send them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .harness import ROOT, Gateway, Simulator
from .pictures import png

pytestmark = pytest.mark.e2e

README = os.path.join(ROOT, "README.md")
STARTERS = sorted(p.stem for p in Path(ROOT, "workflows").glob("*.json") if ".params" not in p.name)


@pytest.fixture(scope="module")
def demo() -> Iterator[Gateway]:
    """The simulator as `make demo` starts it, and the gateway on the starter workflows."""
    sim = Simulator().start()
    gateway = Gateway(sim.url, env={"WORKFLOWS_DIR": os.path.join(ROOT, "workflows")}).start()
    yield gateway
    gateway.stop()
    sim.stop()


def _commands(block: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments dropped."""
    commands, current, quoted = [], "", False
    for line in block.splitlines(keepends=True):
        if not quoted:
            line = re.sub(r"\s+#.*$", "", line) if not line.lstrip().startswith("#") else ""
        current += line
        quoted = current.count("'") % 2 == 1
        if quoted or current.rstrip().endswith("\\"):
            continue
        if current.strip():
            commands.append(current.replace("\\\n", " ").strip())
        current = ""
    return commands


def readme_commands(prefix: str) -> list[str]:
    with open(README, encoding="utf-8") as handle:
        blocks = re.findall(r"```sh\n(.*?)```", handle.read(), re.DOTALL)
    found = [c for block in blocks for c in _commands(block) if c.startswith(prefix)]
    return [c for c in found if "…" not in c and "<" not in c]  # placeholders need a real id


CURLS = [c for c in readme_commands("curl ") if "-X POST" in c and "localhost:5000/api/" in c]
CLI = readme_commands("python -m comfysync.client generate")


def readme_bodies() -> list[str]:
    """Bodies the README gives inline, e.g. `{"workflow": "sd_txt2img", ...}`."""
    with open(README, encoding="utf-8") as handle:
        return re.findall(r'`(\{"workflow": [^`]+\})`', handle.read())


BODIES = readme_bodies()


def curl(gateway: Gateway, command: str, workdir: Path) -> tuple[requests.Response, Path | None]:
    """Send what `command` (the README's curl options) sends; where `-o` wrote the body."""
    args = shlex.split(command)[1:]
    method, url, headers, data, form, out = "GET", "", {}, None, {}, None
    while args:
        arg = args.pop(0)
        if arg in ("-s", "-N"):
            continue
        if arg == "-X":
            method = args.pop(0)
        elif arg == "-H":
            name, _, value = args.pop(0).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data = args.pop(0).encode()
        elif arg == "-F":
            name, _, value = args.pop(0).partition("=")
            form[name] = (
                (value[1:], (workdir / value[1:]).read_bytes()) if value.startswith("@") else value
            )
        elif arg == "-o":
            out = workdir / args.pop(0)
        elif arg.startswith("localhost:5000"):
            url = gateway.url + arg[len("localhost:5000") :]
        else:
            raise AssertionError(f"the README uses a curl option this test does not know: {arg}")
    files = {k: v for k, v in form.items() if isinstance(v, tuple)}
    fields = {k: v for k, v in form.items() if not isinstance(v, tuple)}
    response = requests.request(
        method, url, headers=headers, data=data or fields or None, files=files or None, timeout=120
    )
    if out is not None:
        out.write_bytes(response.content)
    return response, out


def test_the_readme_has_examples_to_run() -> None:
    # The $COMFYSYNC_URL blocks run whole in test_readme_examples.py; these are the rest.
    assert CURLS and CLI and BODIES  # the parsing found them
    assert any('"workflow": "sd_txt2img"' in b for b in BODIES)


@pytest.mark.parametrize("body", BODIES, ids=[b[:70] for b in BODIES])
def test_each_readme_inline_body_generates(demo: Gateway, body: str) -> None:
    response = demo.post("/api/generate", json=json.loads(body))
    assert response.status_code == 200, response.text[:2000]
    assert demo.get(response.json()["url"]).status_code == 200


@pytest.mark.parametrize("command", CURLS, ids=[c[:70] for c in CURLS])
def test_each_readme_curl_example_answers(demo: Gateway, command: str, tmp_path: Path) -> None:
    (tmp_path / "photo.png").write_bytes(png((64, 48)))
    response, out = curl(demo, command, tmp_path)
    assert response.status_code in (200, 201), response.text[:2000]
    if out is not None:
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    elif "text/event-stream" in command:
        assert "event: succeeded" in response.text
    else:
        body = response.json()
        assert body.get("status") == "success" or body.get("run_id"), body


@pytest.mark.parametrize("command", CLI, ids=[c[:70] for c in CLI])
def test_each_readme_cli_example_answers(demo: Gateway, command: str, tmp_path: Path) -> None:
    args = shlex.split(command)
    done = subprocess.run(
        [sys.executable, *args[1:]],
        cwd=tmp_path,
        env={**os.environ, "COMFYSYNC_URL": demo.url, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _required_inputs(demo: Gateway, name: str) -> dict[str, Any]:
    """A value for every parameter the workflow requires (an image for image ones)."""
    schema = demo.get(f"/api/workflows/{name}").json()
    image = "data:image/png;base64," + base64.b64encode(png((64, 64))).decode()
    inputs = {}
    for param in schema.get("parameters", []):
        if param.get("required"):
            assert param["type"] == "image", param  # the only kind a starter requires
            inputs[param["name"]] = image
    return inputs


@pytest.mark.parametrize("name", STARTERS)
def test_every_starter_workflow_runs_on_the_demo(demo: Gateway, name: str) -> None:
    body = {"workflow": name, "inputs": _required_inputs(demo, name)}
    response = demo.post("/api/generate", json=body)
    assert response.status_code == 200, json.dumps(response.json())[:2000]
    image = response.json()["images"][0]
    assert image["content_type"] == "image/png"
    assert demo.get(image["url"]).status_code == 200
