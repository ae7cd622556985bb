"""The README's curl and JavaScript examples, run as written against the real service and
the simulator: only `COMFYSYNC_URL` is set, to the gateway under test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import ROOT, Gateway, Simulator
from .pictures import inverted, pixel, size_of

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n"
DEBIAN_PACKAGE = {"curl": "curl", "node": "nodejs (18 or later)"}


def _needs(binary: str) -> str:
    """`binary`'s path; a skip when it is missing, but a failure under CI, where
    `.ci/run` installs it."""
    found = shutil.which(binary)
    if found and binary == "node":
        version = subprocess.run([found, "--version"], capture_output=True, text=True, check=True)
        if int(version.stdout.lstrip("v").split(".")[0]) < 18:
            found = None  # no global fetch before Node 18
    if found is None:
        message = f"{binary} not found: install Debian's {DEBIAN_PACKAGE[binary]}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def readme_block(heading: str, language: str) -> str:
    """The first `language` code block under `heading` in README.md, as written."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    section = readme.split(f"\n{heading}\n", 1)[1]
    section = section.split("\n### ", 1)[0].split("\n## ", 1)[0]
    return section.split(f"```{language}\n", 1)[1].split("```", 1)[0]


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    """The gateway with the shipped workflows, as `make demo` runs it, in front of a
    simulator slow enough (a second a job) that the examples wait for real."""
    sim = Simulator(job_duration_ms=1000).start()
    try:
        started = Gateway(sim.url, env={"WORKFLOWS_DIR": os.path.join(ROOT, "workflows")})
        yield started.start()
        started.stop()
    finally:
        sim.stop()


def _run(command: list[str], gateway: Gateway, cwd: Path) -> str:
    env = {**os.environ, "COMFYSYNC_URL": gateway.url}
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _sh(heading: str, gateway: Gateway, cwd: Path) -> str:
    """Run the block under `heading` with `sh` (POSIX: no bash-only syntax), stopping at
    the first failing command."""
    _needs("curl")
    script = cwd / "example.sh"
    script.write_text(readme_block(heading, "sh"))
    return _run(["sh", "-eu", str(script)], gateway, cwd)


def _image(gateway: Gateway, url: str) -> bytes:
    """What a browser gets at `url`, an output URL as the gateway gave it."""
    served = gateway.get(url.removeprefix(gateway.url))
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/png"
    assert served.content.startswith(PNG)
    return served.content


def _streams(output: str) -> list[list[tuple[int, str, dict]]]:
    """SSE responses printed one after another: each begins with its `retry:` line."""
    streams = []
    for text in output.split("retry: 2000\n")[1:]:
        events = []
        for block in text.strip().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines())
            events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
        streams.append(events)
    return streams


def test_curl_generate_answers_a_url_that_serves_the_image(gateway: Gateway, tmp_path) -> None:
    answer = json.loads(
        _sh("### `POST /api/generate`: run and answer with a URL", gateway, tmp_path)
    )
    assert answer["status"] == "success" and answer["run_id"]
    image = _image(gateway, answer["url"])
    assert size_of(image) == (64, 64) and pixel(image) == inverted(0xFF8800)


def test_curl_generate_file_writes_the_png(gateway: Gateway, tmp_path) -> None:
    heading = "### `POST /api/generate_file`: run and answer with the bytes"
    assert _sh(heading, gateway, tmp_path) == ""
    written = (tmp_path / "out.png").read_bytes()
    assert written.startswith(PNG) and pixel(written) == inverted(0x2040C0)


def test_curl_run_then_status_polling_ends_with_the_succeeded_record(
    gateway: Gateway, tmp_path
) -> None:
    record = json.loads(_sh("### Runs: the async API, and nothing lost", gateway, tmp_path))
    assert record["status"] == "success" and record["priority"] == 5
    assert pixel(_image(gateway, record["url"])) == inverted(0)


def test_curl_event_streams_follow_resume_and_start_runs(gateway: Gateway, tmp_path) -> None:
    followed, resumed, started = _streams(
        _sh("### Live progress (SSE) and webhooks", gateway, tmp_path)
    )
    assert [seq for seq, _, _ in followed] == list(range(1, len(followed) + 1))
    assert followed[0][1] == "queued" and followed[-1][1] == "succeeded"
    assert resumed == followed[3:]  # everything after event 3, replayed from the store
    kind, result = started[-1][1:]
    assert started[0][1] == "queued" and kind == "succeeded"
    assert result["run_id"] != followed[-1][2]["run_id"]
    assert pixel(_image(gateway, result["url"])) == inverted(0)


def test_javascript_generates_then_follows_a_run_to_its_end(gateway: Gateway, tmp_path) -> None:
    node = _needs("node")
    script = tmp_path / "example.mjs"
    script.write_text(readme_block("### From JavaScript (`fetch`, no dependencies)", "js"))
    lines = _run([node, str(script)], gateway, tmp_path).splitlines()
    printed, generated = lines[0].split(" ", 1)
    assert printed == "image" and generated.startswith(gateway.url + "/output_images/")
    assert pixel(_image(gateway, generated)) == inverted(0x336699)
    events = [line.split(" ", 1)[0] for line in lines[1:-1]]
    assert events[0] == "queued" and events[-1] == "succeeded" and "progress" in events
    status, url = lines[-1].split(" ", 1)
    assert status == "success" and pixel(_image(gateway, url)) == inverted(0)
