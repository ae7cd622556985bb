"""Real processes for end-to-end tests: the ComfyUI simulator and gunicorn."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from comfysync.config import VARIABLES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def _wait_for_file(path: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path) as handle:
                return handle.read().strip()
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"{path} did not appear within {timeout} s")


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Simulator:
    """`python -m comfysync.simulator` in a subprocess, on a free port."""

    def __init__(self, version: str = "0.3.64", **options: Any) -> None:
        self.version = version
        self.options = options
        self.workdir = tempfile.mkdtemp(prefix="comfysim-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = 0

    def start(self) -> Simulator:
        ready = os.path.join(self.workdir, "ready")
        if os.path.exists(ready):
            os.remove(ready)
        args = [
            sys.executable,
            "-m",
            "comfysync.simulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--comfy-version",
            self.version,
            "--data-dir",
            os.path.join(self.workdir, "data"),
            "--ready-file",
            ready,
        ]
        for key, value in self.options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        self.log = open(os.path.join(self.workdir, "simulator.log"), "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = _wait_for_file(ready, self.proc, 30)
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def kill9(self) -> None:
        """SIGKILL the simulator: its queue and history are gone, as with a crashed ComfyUI."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()

    def restart(self) -> Simulator:
        """Start it again on the same port and data folder."""
        return self.start()

    def control(self, action: str, **body: Any) -> dict[str, Any]:
        """Call the simulator's `/_sim/<action>` control API."""
        response = requests.post(f"{self.url}/_sim/{action}", json=body, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else {}

    def stats(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/_sim/stats", timeout=10).json()

    def get(self, path: str) -> Any:
        return requests.get(f"{self.url}{path}", timeout=10).json()

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.log.close()
        _remove(self.workdir)


class Gateway:
    """The real service: gunicorn with the gevent worker, as `make run` starts it."""

    def __init__(self, comfy_url: str, env: Mapping[str, str] | None = None, workers: int = 1):
        self.workdir = tempfile.mkdtemp(prefix="comfysync-")
        self.output_dir = os.path.join(self.workdir, "output_images")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            # No setting comes from the developer's shell or `.env`: only from here and `env`.
            **{k: v for k, v in os.environ.items() if k not in VARIABLES},
            "ENV_FILE": "",
            "COMFYUI_URL": comfy_url,
            "FLASK_HOST": "127.0.0.1",
            "FLASK_PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "OUTPUT_DIR": self.output_dir,
            "DATA_DIR": os.path.join(self.workdir, "data"),
            "WORKFLOWS_DIR": os.path.join(FIXTURES, "workflows"),
            "WS_PING_INTERVAL": "0.5",
            "WS_STALL_TIMEOUT": "2",
            "WS_RECONNECT_MAX_DELAY": "0.5",
            "RECONCILE_INTERVAL": "2",
            "GRACEFUL_TIMEOUT": "10",
            "ACCESS_LOG": "",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Gateway:
        self.log = open(os.path.join(self.workdir, "gateway.log"), "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                requests.get(f"{self.url}/api/workflows", timeout=1)
                return self
            except (requests.ConnectionError, requests.Timeout):  # not listening, or no worker yet
                time.sleep(0.1)
        logs = self.logs()
        self.stop()
        raise RuntimeError(f"gunicorn did not start:\n{logs}")

    def logs(self) -> str:
        with open(os.path.join(self.workdir, "gateway.log"), errors="replace") as handle:
            return handle.read()

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return requests.post(self.url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return requests.get(self.url + path, **kwargs)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            _stop(self.proc, sig, timeout=20)
            self.log.close()
        _remove(self.workdir)

    def kill9(self) -> None:
        """SIGKILL the master and every worker at once: no handler, no cleanup runs."""
        assert self.proc is not None
        pids = [self.proc.pid, *_children(self.proc.pid)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids[1:]) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.log.close()

    def restart(self) -> Gateway:
        """Start the service again on the same port, data and output folders."""
        return self.start()


def _children(pid: int) -> list[int]:
    """Child processes of `pid` (gunicorn's workers), from /proc."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(child) for child in handle.read().split()]
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _remove(workdir: str) -> None:
    """Delete a process' scratch folder, unless KEEP_TEST_DIRS asks to keep it for debugging."""
    if not os.environ.get("KEEP_TEST_DIRS"):
        shutil.rmtree(workdir, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chain(color: int = 0x102030, size: int = 32, prefix: str = "test", blur: int = 0) -> dict:
    """EmptyImage -> (ImageBlur x blur) -> ImageInvert -> SaveImage, as clients send it."""
    graph: dict[str, Any] = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": color},
        }
    }
    previous = "1"
    for i in range(blur):
        node = str(10 + i)
        graph[node] = {
            "class_type": "ImageBlur",
            "inputs": {"image": [previous, 0], "blur_radius": 3, "sigma": 1.0},
        }
        previous = node
    graph["2"] = {"class_type": "ImageInvert", "inputs": {"image": [previous, 0]}}
    graph["3"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["2", 0], "filename_prefix": prefix},
    }
    return graph


def until(predicate: Any, timeout: float = 15, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something true, and return that; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def running_id(sim: Simulator) -> str | None:
    """The prompt the simulator is executing, if any."""
    running = sim.get("/queue")["queue_running"]
    return running[0][1] if running else None


def send_and_abandon(gateway: Gateway, body: dict) -> socket.socket:
    """Send a generate request on a raw socket that the test will close unanswered."""
    payload = json.dumps(body).encode()
    host = urlsplit(gateway.url)
    raw = socket.create_connection((host.hostname, host.port))
    raw.sendall(
        b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return raw
