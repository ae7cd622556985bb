"""A fleet on one machine without Docker: Redis, N simulators, M gateway instances.

The topology of `docker-compose.fleet.yml` as local processes, for trying a
fleet and for its test: `python -m comfysync.simulator.fleet` (or
`make fleet-demo`). Every gateway instance runs under gunicorn as `make run`
starts it, shares one Redis and one output folder, and lists every simulator
in COMFYUI_URLS. Ctrl-C (or SIGTERM) stops them all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} in {timeout:g} s")


def redis_binary() -> str | None:
    """redis-server from PATH, else the one the dev requirements put into the venv."""
    found = shutil.which("redis-server")
    if found:
        return found
    beside = os.path.join(sysconfig.get_path("scripts"), "redis-server")
    return beside if os.access(beside, os.X_OK) else None


@contextmanager
def _process(
    args: list[str], log: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def run(servers: int, instances: int, port: int, workdir: str, ready_file: str | None) -> None:
    """Start the fleet, write its addresses to `ready_file` (JSON), and wait for a signal."""
    binary = redis_binary()
    if binary is None:
        raise SystemExit("redis-server not found: install Debian's redis-server, or `make test`")
    stop = {"now": False}

    def on_signal(_signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    outputs = os.path.join(workdir, "output_images")
    os.makedirs(outputs, exist_ok=True)
    with ExitStack() as stack:
        redis_port = _free_port()
        redis_args = [binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
        redis_args += ["--appendonly", "no", "--dir", workdir]
        redis = stack.enter_context(_process(redis_args, os.path.join(workdir, "redis.log")))
        _wait_port(redis_port, redis, "redis-server")
        sims = []
        for i in range(1, servers + 1):
            sim_port = _free_port()
            args = [sys.executable, "-m", "comfysync.simulator", "--port", str(sim_port)]
            args += ["--job-duration-ms", "500", "--data-dir", os.path.join(workdir, f"sim{i}")]
            sim = stack.enter_context(_process(args, os.path.join(workdir, f"sim{i}.log")))
            _wait_port(sim_port, sim, f"simulator gpu{i}")
            sims.append((f"gpu{i}", sim_port))
        fleet = ",".join(f"{name}=http://127.0.0.1:{p}" for name, p in sims)
        gateways = []
        for i in range(instances):
            gateway_port = port + i
            env = {
                **os.environ,
                "ENV_FILE": "",  # the demo's settings only, whatever .env holds
                "COMFYUI_URLS": fleet,
                "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "OUTPUT_DIR": outputs,
                "FLASK_HOST": "127.0.0.1",
                "FLASK_PORT": str(gateway_port),
                "DATA_DIR": os.path.join(workdir, f"data{i}"),
            }
            args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
            log = os.path.join(workdir, f"gateway{i + 1}.log")
            gateway = stack.enter_context(_process(args, log, env))
            _wait_port(gateway_port, gateway, f"gateway {i + 1}")
            gateways.append(f"http://127.0.0.1:{gateway_port}")
        described = {"gateways": gateways, "servers": dict(sims), "logs": workdir}
        print(json.dumps(described, indent=2), flush=True)
        if ready_file:
            with open(ready_file + ".tmp", "w", encoding="utf-8") as handle:
                json.dump(described, handle)
            os.replace(ready_file + ".tmp", ready_file)
        while not stop["now"]:
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m comfysync.simulator.fleet")
    parser.add_argument("--servers", type=int, default=2, help="simulated ComfyUI servers")
    parser.add_argument("--instances", type=int, default=2, help="gateway instances")
    parser.add_argument("--port", type=int, default=5000, help="the first gateway's port")
    parser.add_argument("--ready-file", default=None, help="write the addresses here (JSON)")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="comfysync-fleet-")
    try:
        run(args.servers, args.instances, args.port, workdir, args.ready_file)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
