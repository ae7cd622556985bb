"""The processes under test (simulator, gunicorn) and reading their accounting from /proc."""

from __future__ import annotations

import atexit
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any

import requests

from comfysync.config import VARIABLES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_WORKFLOWS = os.path.join(ROOT, "bench", "workflows")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Work folders are removed when the benchmark process ends, not when each
# process stops, and they live in RAM where possible (`memory_dir`). On ext4
# without a journal (this machine's disk) new inodes skip ones freed in the
# last one to six minutes: after thousands of deletions nearby, creating a
# file cost 0.4-0.7 ms of kernel time instead of ~0.02 ms (perf: the time is
# in find_inode_bit -> recently_deleted). Test runs and earlier scenarios
# delete thousands of files under the temp folder, so figures taken on that
# disk measured its recent history, not the gateway; `disk_create_us`
# reports what the disk costs instead.
_LEFTOVERS: list[str] = []


@atexit.register
def _remove_leftovers() -> None:
    for folder in _LEFTOVERS:
        shutil.rmtree(folder, ignore_errors=True)


def _remove_later(folder: str) -> None:
    _LEFTOVERS.append(folder)


# -- /proc accounting ----------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of every thread of `pid` (not its children)."""
    with open(f"/proc/{pid}/stat") as handle:
        # The command name may hold spaces; the fields after its ")" are fixed.
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak resident size) in kB."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                found[name] = int(value.split()[0])
    return found


def reset_peak_rss(pid: int) -> bool:
    """Make VmHWM start again from the current RSS (Linux `clear_refs` 5); False if refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def children(pid: int) -> list[int]:
    """Direct child processes of `pid` (gunicorn's workers, for its master)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        if ppid == pid:
            found.append(int(entry))
    return sorted(found)


# -- process helpers -------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _tail(path: str, size: int = 3000) -> str:
    try:
        with open(path, errors="replace") as handle:
            return handle.read()[-size:]
    except OSError:
        return ""


def memory_dir() -> str | None:
    """A RAM-backed folder (tmpfs) when the system has one, else None (the temp dir)."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


class Simulator:
    """`python -m comfysync.simulator` on a free port, driven through `/_sim/`.

    Its files live in RAM where possible: a real ComfyUI writes to its own
    disk, and here the simulator's writes would otherwise compete with the
    gateway's on the one disk, adding the stand-in's I/O to the gateway's
    figures.
    """

    def __init__(
        self, parallel: int = 1, job_duration_ms: str = "0", *, job_log: bool = False
    ) -> None:
        self.workdir = tempfile.mkdtemp(prefix="bench-sim-", dir=memory_dir())
        self.parallel = parallel
        self.job_duration_ms = job_duration_ms
        # One JSON line per finished prompt (start, end, prompts waiting behind it).
        self.job_log = os.path.join(self.workdir, "jobs.jsonl") if job_log else ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.session = requests.Session()

    def start(self) -> Simulator:
        ready = os.path.join(self.workdir, "ready")
        args = [
            sys.executable,
            "-m",
            "comfysync.simulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            os.path.join(self.workdir, "data"),
            "--ready-file",
            ready,
            "--parallel",
            str(self.parallel),
            "--job-duration-ms",
            self.job_duration_ms,
        ]
        if self.job_log:
            args += ["--job-log", self.job_log]
        self.log_path = os.path.join(self.workdir, "simulator.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if os.path.exists(ready) and os.path.getsize(ready) > 0:
                with open(ready) as handle:
                    self.url = handle.read().strip()
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"simulator did not start:\n{_tail(self.log_path)}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def jobs(self) -> list[dict[str, Any]]:
        """The prompts it finished, from its job log (started with `job_log=True`)."""
        if not self.job_log or not os.path.exists(self.job_log):
            return []
        with open(self.job_log, encoding="utf-8") as log:
            return [json.loads(line) for line in log if line.strip()]

    def kill9(self) -> None:
        """SIGKILL it, as a crashed ComfyUI: its queue is gone."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    @property
    def output_dir(self) -> str:
        """The simulator's output folder, for COMFYUI_OUTPUT_DIR (copy from disk)."""
        return os.path.join(self.workdir, "data", "output")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """`POST /_sim/config`, e.g. parallel=32, job_duration_ms=[5000, 10000]."""
        response = self.session.post(f"{self.url}/_sim/config", json=settings, timeout=10)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        """`GET /_sim/stats`: counters and the simulator's own CPU time."""
        return self.session.get(f"{self.url}/_sim/stats", timeout=30).json()

    def history(self, max_items: int) -> dict[str, Any]:
        """The newest `max_items` history entries (read after a run, never during one)."""
        response = self.session.get(
            f"{self.url}/history", params={"max_items": max_items}, timeout=120
        )
        return response.json()

    def stop(self) -> None:
        self.session.close()
        if self.proc is not None:
            _stop(self.proc)
        _remove_later(self.workdir)


class Gateway:
    """The service under gunicorn with the gevent worker, started as the README runs it.

    Its OUTPUT_DIR is in RAM where possible, for the reason given at `_LEFTOVERS`.
    """

    def __init__(
        self,
        comfy_url: str,
        workers: int = 1,
        worker_connections: int = 1000,
        backlog: int | None = None,
        extra_env: Mapping[str, str] | None = None,
        inflight: int = 2,
    ) -> None:
        self.workdir = tempfile.mkdtemp(prefix="bench-gw-", dir=memory_dir())
        # The run store stays on disk, where a real deployment keeps it.
        self.datadir = tempfile.mkdtemp(prefix="bench-data-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.backlog = backlog
        self.env = {
            # Default settings except these: nothing from the shell or a `.env` file.
            **{k: v for k, v in os.environ.items() if k not in VARIABLES},
            "ENV_FILE": "",
            "COMFYUI_URL": comfy_url,
            "FLASK_HOST": "127.0.0.1",
            "FLASK_PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "WORKER_CONNECTIONS": str(worker_connections),
            "OUTPUT_DIR": os.path.join(self.workdir, "output_images"),
            "WORKFLOWS_DIR": BENCH_WORKFLOWS,
            "DATA_DIR": self.datadir,
            # As many prompts in ComfyUI at once as the simulator runs in parallel
            # (the default, 2, keeps a one-slot ComfyUI busy between jobs).
            "COMFYUI_MAX_INFLIGHT": str(inflight),
            "ACCESS_LOG": "",
            "LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.worker_pids: list[int] = []

    def start(self) -> Gateway:
        args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
        if self.backlog:
            # 2048 (the default) is below a burst of 5,000 new connections.
            self.env["GUNICORN_BACKLOG"] = str(self.backlog)
        self.log_path = os.path.join(self.workdir, "gateway.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                args,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            self.worker_pids = children(self.proc.pid)
            if len(self.worker_pids) == self.workers and self._connected():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not start:\n{_tail(self.log_path)}")

    def _connected(self) -> bool:
        """Every worker has opened its WebSocket (post_worker_init starts it)."""
        try:
            return all(s["connected"] for s in self.status()["servers"])
        except (requests.RequestException, KeyError, ValueError):
            return False

    def status(self) -> dict[str, Any]:
        """`GET /api/status` of whichever worker answers."""
        return requests.get(f"{self.url}/api/status", timeout=5).json()

    def cpu_seconds(self) -> float:
        """CPU seconds of the worker processes (the master only supervises)."""
        return sum(cpu_seconds(pid) for pid in self.worker_pids)

    def logs(self) -> str:
        return _tail(self.log_path, 20000)

    def warnings(self, skip: str = "", limit: int = 5) -> list[str]:
        """Distinct WARNING/ERROR lines of the log (without their timestamps), with counts."""
        seen: dict[str, int] = {}
        with open(self.log_path, errors="replace") as handle:
            for line in handle:
                if (" WARNING " in line or " ERROR " in line) and not (skip and skip in line):
                    message = line.split(" ", 2)[-1].strip()[:300]
                    seen[message] = seen.get(message, 0) + 1
        ranked = sorted(seen.items(), key=lambda item: -item[1])[:limit]
        return [f"{count}x {message}" for message, count in ranked]

    def count_in_log(self, text: str) -> int:
        """How many log lines contain `text` (warnings are logged at LOG_LEVEL=WARNING)."""
        with open(self.log_path, errors="replace") as handle:
            return sum(text in line for line in handle)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, timeout=20)
        _remove_later(self.workdir)
        _remove_later(self.datadir)


class BusyProcess:
    """A process that keeps `cores` of one CPU busy, in 1 ms slices, until stopped.

    The control for the gateway's latency under contention: what any process
    using that much CPU next to ComfyUI and its clients costs them.
    """

    _LOOP = (
        "import time\n"
        "busy = {cores} * 0.001\n"
        "while True:\n"
        "    start = time.perf_counter()\n"
        "    while time.perf_counter() - start < busy:\n"
        "        pass\n"
        "    time.sleep(0.001 - busy)\n"
    )

    def __init__(self, cores: float) -> None:
        self.cores = min(max(cores, 0.0), 0.95)
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BusyProcess:
        code = self._LOOP.format(cores=self.cores)
        self.proc = subprocess.Popen([sys.executable, "-c", code])
        self.started, self.cpu0 = time.monotonic(), cpu_seconds(self.proc.pid)
        return self

    def cores_used(self) -> float:
        """The share of a core it actually got so far."""
        assert self.proc is not None
        return (cpu_seconds(self.proc.pid) - self.cpu0) / (time.monotonic() - self.started)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def disk_create_us(count: int = 500, size: int = 590) -> list[float]:
    """Microseconds to create and write one small file on the temp folder's disk, per file.

    What the gateway's local write costs on that disk, which the figures
    taken with OUTPUT_DIR in RAM leave out.
    """
    folder = tempfile.mkdtemp(prefix="bench-disk-")
    _remove_later(folder)
    payload = os.urandom(size)
    times = []
    for i in range(count):
        started = time.perf_counter()
        fd = os.open(os.path.join(folder, f"{i}.png"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, payload)
        finally:
            os.close(fd)
        times.append((time.perf_counter() - started) * 1e6)
    return times


def raise_fd_limit(wanted: int = 65536) -> int:
    """Lift the soft limit on open files as far as the hard limit allows; returns it.

    Child processes inherit it, so calling this once before starting them is enough.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
