"""The multi-instance deployment: the compose file (parsed: no Docker engine here) and
`make fleet-demo`, which runs the same topology as local processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
import yaml

from .harness import ROOT, chain, until
from .pictures import inverted, pixel

pytestmark = pytest.mark.e2e


def test_the_fleet_compose_file_runs_two_gateways_over_one_redis() -> None:
    with open(os.path.join(ROOT, "docker-compose.fleet.yml"), encoding="utf-8") as handle:
        compose = yaml.safe_load(handle)
    services = compose["services"]
    assert {"redis", "gateway1", "gateway2", "sim1", "sim2"} <= set(services)
    gateways = [services["gateway1"], services["gateway2"]]
    for gateway in gateways:
        env = gateway["environment"]
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert all(f"http://sim{i}:8188" in env["COMFYUI_URLS"] for i in (1, 2))
        assert any(v.startswith("outputs:") for v in gateway["volumes"])  # one output folder
    assert {g["ports"][0].split(":")[0] for g in gateways} == {"5000", "5001"}
    assert services["sim1"]["command"][:3] == ["python", "-m", "comfysync.simulator"]


def _two_free_ports() -> int:
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        try:
            with socket.socket() as other:
                other.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise AssertionError("no two free ports in a row")


def test_fleet_demo_serves_runs_from_either_instance(tmp_path, redis_url: str) -> None:
    del redis_url  # the demo starts its own redis-server; the fixture fails in CI without one
    ready = tmp_path / "fleet.json"
    port = _two_free_ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMFYUI_", "REDIS_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "comfysync.simulator.fleet", "--port", str(port)]
        + ["--ready-file", str(ready)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        until(lambda: ready.exists() or proc.poll() is not None, 60, 0.1)
        assert proc.poll() is None, "the fleet demo exited"
        fleet = json.loads(ready.read_text())
        first, second = fleet["gateways"]
        assert sorted(fleet["servers"]) == ["gpu1", "gpu2"]
        until(lambda: requests.get(f"{first}/ready", timeout=5).status_code == 200, 30, 0.2)
        answers = [
            requests.post(f"{url}/api/generate", json={"workflow_data": chain(c)}, timeout=60)
            for url, c in ((first, 0x112233), (second, 0x445566))
        ]
        assert [a.status_code for a in answers] == [200, 200]
        # Either instance knows every run and serves every file.
        for answer, color in zip(answers, (0x112233, 0x445566), strict=True):
            run_id = answer.json()["run_id"]
            for url in (first, second):
                assert requests.get(f"{url}/api/status/{run_id}", timeout=10).json()["status"] == (
                    "success"
                )
                image = requests.get(url + answer.json()["url"], timeout=10)
                assert pixel(image.content) == inverted(color)
        servers = requests.get(f"{first}/api/servers", timeout=10).json()["servers"]
        assert [s["name"] for s in servers] == ["gpu1", "gpu2"] and all(s["up"] for s in servers)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    time.sleep(0.2)
    for p in (port, port + 1):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", p), timeout=1).close()
