"""The Python client and its CLI against the real service and the simulator."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from comfysync.client import ApiError, Client

from .harness import ROOT, Gateway, chain
from .pictures import inverted, pixel

pytestmark = pytest.mark.e2e

STORED_COLOR = 1193046  # tests/fixtures/workflows/invert.json's EmptyImage


def test_generate_run_wait_and_events(shared_gateway: Gateway) -> None:
    with Client(shared_gateway.url) as client:
        assert "invert" in client.workflows()
        result = client.generate("invert")
        assert result.run_id and result.prompt_id and result.url
        assert pixel(client.download(result.url)) == inverted(STORED_COLOR)
        assert pixel(client.generate_file(workflow_data=chain(0x203040))) == inverted(0x203040)

        run_id = client.run(workflow_data=chain(0x405060))
        events = list(client.events(run_id))
        assert events[0].type == "queued" and events[-1].type == "succeeded"
        assert [e.id for e in events] == list(range(1, len(events) + 1))
        done = client.wait(run_id)
        assert done.run_id == run_id and pixel(client.download(done.url)) == inverted(0x405060)

        with pytest.raises(ApiError) as refused:
            client.generate("invert", output_format="tiff")
        assert refused.value.status == 400 and refused.value.field == "output_format"
        failing = client.run(workflow_data={"1": {"class_type": "EmptyImage", "inputs": {}}})
        with pytest.raises(ApiError) as failed:
            client.wait(failing)
        assert failed.value.status == 400


def test_429_is_retried_after_its_retry_after(shared_sim, make_gateway) -> None:
    gateway = make_gateway(shared_sim.url, RATE_LIMIT="2/second")
    with Client(gateway.url, retries=5) as client:
        results = [client.generate("invert") for _ in range(5)]  # over the limit: waits, not fails
    assert all(r.url for r in results)
    with Client(gateway.url, retries=0) as impatient:
        with pytest.raises(ApiError) as limited:
            for _ in range(5):
                impatient.workflows()
    assert limited.value.status == 429


def test_cli_generates_a_file(shared_gateway: Gateway, tmp_path) -> None:
    out = tmp_path / "out.png"
    env = {**os.environ, "COMFYSYNC_URL": shared_gateway.url}
    done = subprocess.run(
        [sys.executable, "-m", "comfysync.client", "generate", "invert", "-o", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert pixel(out.read_bytes()) == inverted(STORED_COLOR)
    missing = subprocess.run(
        [sys.executable, "-m", "comfysync.client", "generate", "no_such_flow"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert missing.returncode == 1 and "not_found" in missing.stderr


def test_the_readme_client_example_runs(shared_sim, make_gateway, capsys) -> None:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    section = readme.split("### The Python client and CLI", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    gateway = make_gateway(shared_sim.url, WORKFLOWS_DIR=os.path.join(ROOT, "workflows"))
    exec(example.replace("http://127.0.0.1:5000", gateway.url), {})  # noqa: S102 - our own README
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("queued ") and printed[-1].startswith("/output_images/")
