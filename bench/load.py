"""The load generator: a separate asyncio + aiohttp process, so it never shares a GIL with
what it measures and can hold thousands of connections cheaply.

The parent describes a run as JSON (`LoadSpec`); `python -m bench.load SPEC OUT` runs it
and writes one record per request. Every run is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .processes import ROOT, raise_fd_limit


@dataclass
class LoadSpec:
    """One load run. `closed`: `concurrency` clients loop until `count` requests are done;
    `burst`: all `count` requests start at once (spread over `ramp_seconds` if set)."""

    client: str  # gateway | direct | per_request_socket | polling
    count: int
    max_seconds: float
    mode: str = "closed"
    concurrency: int = 1
    warmup: int = 0
    ramp_seconds: float = 0.0
    gateway_url: str = ""
    endpoint: str = "/api/generate"
    body: dict[str, Any] = field(default_factory=dict)
    comfy_url: str = ""
    workflow: str = "bench_small"


@dataclass
class Record:
    """One request: epoch start and end (the simulator stamps events on the same clock)."""

    start: float
    end: float
    ok: bool
    prompt_id: str = ""
    size: int = 0
    error: str = ""

    @property
    def latency_ms(self) -> float:
        return (self.end - self.start) * 1000


@dataclass
class LoadResult:
    """Everything the load process reports back."""

    records: list[Record]
    released_at: float  # epoch time the measured requests started
    wall_s: float
    cpu_s: float  # the load generator's own CPU, to show it is not the bottleneck
    warmup_errors: list[str]

    @property
    def ok(self) -> list[Record]:
        return [r for r in self.records if r.ok]

    @property
    def errors(self) -> list[Record]:
        return [r for r in self.records if not r.ok]

    def latencies_ms(self) -> list[float]:
        return [r.latency_ms for r in self.ok]


# -- the child process -------------------------------------------------------------------


class Client(Protocol):
    async def open(self, session: Any) -> None: ...
    async def one(self, session: Any) -> tuple[str, int]: ...
    async def close(self) -> None: ...


def _build_client(spec: LoadSpec) -> Client:
    from .baselines.comfy import load_workflow

    if spec.client == "gateway":
        from .gateway_client import GatewayClient

        return GatewayClient(spec.gateway_url, spec.endpoint, spec.body)
    graph = load_workflow(spec.workflow)
    if spec.client == "direct":
        from .baselines.direct import DirectClient

        return DirectClient(spec.comfy_url, graph)
    if spec.client == "per_request_socket":
        from .baselines.per_request_socket import PerRequestSocketClient

        return PerRequestSocketClient(spec.comfy_url, graph)
    if spec.client == "polling":
        from .baselines.polling import PollingClient

        return PollingClient(spec.comfy_url, graph)
    raise ValueError(f"unknown client {spec.client!r}")


async def _timed(client: Client, session: Any, deadline: float) -> Record:
    start = time.time()
    try:
        async with asyncio.timeout_at(deadline):
            prompt_id, size = await client.one(session)
        return Record(start, time.time(), True, prompt_id, size)
    except TimeoutError:
        return Record(start, time.time(), False, error="timeout: the run's time bound passed")
    except Exception as err:  # noqa: BLE001 - every failure is one error record
        return Record(start, time.time(), False, error=f"{type(err).__name__}: {err}"[:300])


async def _run(spec: LoadSpec) -> LoadResult:
    import aiohttp

    loop = asyncio.get_running_loop()
    # No pool limit: a closed loop of C clients uses C connections, a burst N.
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        client = _build_client(spec)
        await client.open(session)
        warmup_errors = []
        for _ in range(spec.warmup):
            record = await _timed(client, session, loop.time() + 60)
            if not record.ok:
                warmup_errors.append(record.error)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        released_at, t0 = time.time(), loop.time()
        deadline = t0 + spec.max_seconds
        records: list[Record] = []
        if spec.mode == "burst":
            tasks = []
            for i in range(spec.count):
                if spec.ramp_seconds and i:
                    await asyncio.sleep(spec.ramp_seconds / spec.count)
                tasks.append(asyncio.create_task(_timed(client, session, deadline)))
            records = list(await asyncio.gather(*tasks))
        else:
            issued = 0

            async def worker() -> None:
                nonlocal issued
                while issued < spec.count and loop.time() < deadline:
                    issued += 1
                    records.append(await _timed(client, session, deadline))

            await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
        wall = loop.time() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        await client.close()
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return LoadResult(records, released_at, wall, cpu, warmup_errors)


def main(argv: list[str]) -> int:
    """`python -m bench.load SPEC.json OUT.json`."""
    raise_fd_limit()
    with open(argv[0]) as handle:
        spec = LoadSpec(**json.load(handle))
    result = asyncio.run(_run(spec))
    with open(argv[1], "w") as handle:
        json.dump(
            {
                "records": [asdict(r) for r in result.records],
                "released_at": result.released_at,
                "wall_s": result.wall_s,
                "cpu_s": result.cpu_s,
                "warmup_errors": result.warmup_errors,
            },
            handle,
        )
    return 0


# -- the parent side ----------------------------------------------------------------------


def run_load(
    spec: LoadSpec, on_tick: Callable[[], None] | None = None, tick_seconds: float = 0.05
) -> LoadResult:
    """Run `spec` in a child process; call `on_tick` while it runs (to sample memory).

    :raises RuntimeError: when the load process fails or overruns its own bound.
    """
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        spec_path, out_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(spec_path, "w") as handle:
            json.dump(asdict(spec), handle)
        err_path = os.path.join(tmp, "stderr.txt")
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.load", spec_path, out_path], cwd=ROOT, stderr=err
            )
        # Warm-up and start-up come on top of the measured time; 90 s covers both.
        hard_deadline = time.monotonic() + spec.max_seconds + 90
        while proc.poll() is None:
            if time.monotonic() > hard_deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError("the load generator overran its time bound")
            if on_tick is not None:
                on_tick()
            time.sleep(tick_seconds)
        with open(err_path, errors="replace") as handle:
            stderr = handle.read()
        if proc.returncode != 0:
            raise RuntimeError(f"the load generator failed:\n{stderr[-3000:]}")
        with open(out_path) as handle:
            raw = json.load(handle)
    return LoadResult(
        [Record(**r) for r in raw["records"]],
        raw["released_at"],
        raw["wall_s"],
        raw["cpu_s"],
        raw["warmup_errors"],
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
