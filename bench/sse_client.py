"""The event-stream load generator: a separate asyncio process holding many SSE streams.

Each stream is a raw asyncio protocol (no HTTP client library): one socket, a
few hundred bytes of state, and every event stamped with the time its bytes
arrived (`time.time()`, the clock the simulator stamps `execution_start` with),
so 1,000 streams cost this process little and add nothing to the latency read.

Two modes, each bounded in count and in time:

- `fanout`: post `count` runs (`concurrency` clients), then open one stream per
  run, all held at once. With `hold`, it waits after posting until the parent
  says go (`StreamClient.release`), so the parent can read the worker's memory
  with the runs queued and no stream open.
- `pairs`: `concurrency` loops; each posts a run to the next gateway in turn,
  then opens a stream on every gateway and reads them all to the end.

`python -m bench.sse_client SPEC OUT`; the parent side is `StreamClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .processes import ROOT, raise_fd_limit

FINAL = frozenset({"succeeded", "failed", "cancelled"})


@dataclass
class StreamSpec:
    mode: str  # fanout | pairs
    gateways: list[str]
    count: int
    max_seconds: float
    concurrency: int = 32
    body: dict[str, Any] = field(default_factory=dict)
    hold: bool = False  # fanout: wait for the parent's go between posting and streaming
    connect_at_once: int = 200  # fanout: connections being set up at any one time
    status_path: str = ""
    go_path: str = ""


@dataclass
class StreamRecord:
    """One stream; times are epoch seconds on this machine's clock."""

    run_id: str
    gateway: int  # index in StreamSpec.gateways
    opened: float  # the connection was asked for
    head_at: float = 0.0  # the response's headers arrived
    ended: float = 0.0
    # [type, id, received, data["at"]] per event; `at` (ComfyUI's epoch ms) only for `started`.
    events: list[list[Any]] = field(default_factory=list)
    prompt_id: str = ""
    error: str = ""
    pair: int = -1  # pairs: the run's index

    def first(self, kind: str) -> list[Any] | None:
        return next((e for e in self.events if e[0] == kind), None)


class Counters:
    """Streams open now (headers in, final event not yet), at most, and attached."""

    def __init__(self) -> None:
        self.open = 0
        self.peak_open = 0
        self.attached = 0  # streams that got their first event
        self.ended = 0
        self.posted = 0
        self.post_errors: list[str] = []
        self.all_attached_at = 0.0
        self.expected = 0

    def opened(self) -> None:
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)

    def closed(self) -> None:
        self.open -= 1
        self.ended += 1

    def first_event(self) -> None:
        self.attached += 1
        if self.expected and self.attached == self.expected:
            self.all_attached_at = time.time()


class SseProtocol(asyncio.Protocol):
    """GET one event stream and parse it as it arrives (chunked or not)."""

    def __init__(self, record: StreamRecord, request: bytes, counters: Counters) -> None:
        self.record = record
        self.request = request
        self.counters = counters
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.raw = bytearray()  # bytes not yet decoded (head, chunk framing)
        self.text = bytearray()  # decoded body not yet split into events
        self.in_head = True
        self.chunked = False
        self.chunk_left = 0  # payload bytes of the current chunk still to come
        self.skip = 0  # bytes of a chunk's trailing CRLF still to drop
        self.is_open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.raw += data
        if self.in_head:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.raw[:end].decode("latin-1")
            del self.raw[: end + 4]
            self.in_head = False
            status_line, *lines = head.split("\r\n")
            parts = status_line.split(" ", 2)
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip().lower()
            self.record.head_at = now
            if len(parts) < 2 or parts[1] != "200":
                code = parts[1] if len(parts) > 1 else "?"
                self._finish(f"HTTP {code}: {bytes(self.raw[:200])!r}")
                return
            self.chunked = "chunked" in headers.get("transfer-encoding", "")
            self.is_open = True
            self.counters.opened()
        self._decode()
        self._events(now)

    def _decode(self) -> None:
        raw = self.raw
        if not self.chunked:
            self.text += raw
            raw.clear()
            return
        while raw:
            if self.skip:
                taken = min(self.skip, len(raw))
                del raw[:taken]
                self.skip -= taken
                continue
            if self.chunk_left:
                taken = min(self.chunk_left, len(raw))
                self.text += raw[:taken]
                del raw[:taken]
                self.chunk_left -= taken
                if not self.chunk_left:
                    self.skip = 2
                continue
            line_end = raw.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(raw[:line_end]).split(b";")[0], 16)
            del raw[: line_end + 2]
            if size == 0:
                raw.clear()  # the body's end; the final event came before it
                return
            self.chunk_left = size

    def _events(self, now: float) -> None:
        text = self.text
        while True:
            end = text.find(b"\n\n")
            if end < 0:
                return
            block = bytes(text[:end])
            del text[: end + 2]
            fields: dict[bytes, bytes] = {}
            for line in block.split(b"\n"):
                if line.startswith(b":"):
                    continue  # a heartbeat comment
                name, _, value = line.partition(b":")
                fields[name] = value.removeprefix(b" ")
            kind = fields.get(b"event")
            if kind is None:
                continue  # `retry:`
            kind_s = kind.decode()
            at = None
            if kind_s == "started":
                data = json.loads(fields.get(b"data", b"{}"))
                at = data.get("at")
                self.record.prompt_id = data.get("prompt_id") or ""
            if not self.record.events:
                self.counters.first_event()
            self.record.events.append([kind_s, int(fields.get(b"id", b"0")), now, at])
            if kind_s in FINAL:
                self._finish("")
                return

    def _finish(self, error: str) -> None:
        if self.done.done():
            return
        self.record.ended = time.time()
        self.record.error = error
        if self.is_open:
            self.counters.closed()
        if self.transport is not None:
            self.transport.close()
        self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {type(exc).__name__}: {exc}" if exc else ""
        self._finish(f"closed before the final event{reason}")


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def stream(
    url: str,
    run_id: str,
    gateway: int,
    counters: Counters,
    deadline: float,
    connecting: asyncio.Semaphore | None = None,
) -> StreamRecord:
    """One run's event stream, read to its final event (or an error, or the deadline)."""
    loop = asyncio.get_running_loop()
    host, port = _address(url)
    request = (
        f"GET /api/status/{run_id}/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Accept: text/event-stream\r\nConnection: close\r\n\r\n"
    ).encode()
    record = StreamRecord(run_id, gateway, time.time())
    try:
        async with asyncio.timeout_at(deadline):
            async with connecting or contextlib.nullcontext():
                record.opened = time.time()
                _, proto = await loop.create_connection(
                    lambda: SseProtocol(record, request, counters), host, port
                )
            try:
                await proto.done
            finally:
                proto._finish(record.error or "timeout: the run's time bound passed")
    except TimeoutError:
        record.error = record.error or "timeout: the run's time bound passed"
        record.ended = record.ended or time.time()
    except OSError as err:
        record.error = f"{type(err).__name__}: {err}"[:300]
        record.ended = time.time()
    return record


async def _post_run(session: Any, url: str, body: bytes, counters: Counters) -> str:
    try:
        async with session.post(
            url + "/api/run", data=body, headers={"Content-Type": "application/json"}
        ) as response:
            text = await response.text()
            if response.status != 201:
                counters.post_errors.append(f"HTTP {response.status}: {text[:200]}")
                return ""
            counters.posted += 1
            return json.loads(text)["run_id"]
    except Exception as err:  # noqa: BLE001 - every failure is one error
        counters.post_errors.append(f"{type(err).__name__}: {err}"[:300])
        return ""


def _write_status(spec: StreamSpec, counters: Counters, phase: str) -> None:
    if not spec.status_path:
        return
    status = {
        "phase": phase,
        "posted": counters.posted,
        "post_errors": len(counters.post_errors),
        "open": counters.open,
        "peak_open": counters.peak_open,
        "attached": counters.attached,
        "ended": counters.ended,
        "all_attached_at": counters.all_attached_at,
    }
    with open(spec.status_path + ".tmp", "w") as handle:
        json.dump(status, handle)
    os.replace(spec.status_path + ".tmp", spec.status_path)


async def _fanout(
    spec: StreamSpec, session: Any, counters: Counters, deadline: float, out: dict[str, Any]
) -> list[StreamRecord]:
    body = json.dumps(spec.body).encode()
    run_ids: list[str] = []
    issued = 0
    out["posting_started"] = time.time()

    loop = asyncio.get_running_loop()

    async def poster() -> None:
        nonlocal issued
        while issued < spec.count and loop.time() < deadline:
            issued += 1
            run_id = await _post_run(session, spec.gateways[0], body, counters)
            if run_id:
                run_ids.append(run_id)

    await asyncio.gather(*(poster() for _ in range(spec.concurrency)))
    out["posted_at"] = time.time()
    out["phase"] = "posted"
    if spec.hold and spec.go_path:
        while not os.path.exists(spec.go_path) and loop.time() < deadline:
            await asyncio.sleep(0.02)
    out["streaming_from"] = time.time()
    out["phase"] = "streaming"
    counters.expected = len(run_ids)
    connecting = asyncio.Semaphore(spec.connect_at_once)
    tasks = [
        asyncio.create_task(stream(spec.gateways[0], r, 0, counters, deadline, connecting))
        for r in run_ids
    ]
    return list(await asyncio.gather(*tasks))


async def _pairs(
    spec: StreamSpec, session: Any, counters: Counters, deadline: float
) -> list[StreamRecord]:
    body = json.dumps(spec.body).encode()
    records: list[StreamRecord] = []
    loop = asyncio.get_running_loop()
    issued = 0

    async def worker() -> None:
        nonlocal issued
        while issued < spec.count and loop.time() < deadline:
            index = issued
            issued += 1
            target = spec.gateways[index % len(spec.gateways)]
            run_id = await _post_run(session, target, body, counters)
            if not run_id:
                continue
            both = await asyncio.gather(
                *(stream(url, run_id, g, counters, deadline) for g, url in enumerate(spec.gateways))
            )
            for record in both:
                record.pair = index
            records.extend(both)

    await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
    return records


async def _run(spec: StreamSpec) -> dict[str, Any]:
    import aiohttp

    loop = asyncio.get_running_loop()
    counters = Counters()
    out: dict[str, Any] = {"phase": "posting"}

    async def report() -> None:
        while True:
            _write_status(spec, counters, out["phase"])
            await asyncio.sleep(0.05)

    reporter = asyncio.create_task(report())
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60, sock_connect=30)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started, t0 = time.time(), loop.time()
    deadline = t0 + spec.max_seconds
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if spec.mode == "fanout":
            records = await _fanout(spec, session, counters, deadline, out)
        elif spec.mode == "pairs":
            records = await _pairs(spec, session, counters, deadline)
        else:
            raise ValueError(f"unknown mode {spec.mode!r}")
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    out["phase"] = "done"
    reporter.cancel()
    _write_status(spec, counters, "done")
    return {
        **{k: v for k, v in out.items() if k != "phase"},
        "streams": [asdict(r) for r in records],
        "post_errors": counters.post_errors,
        "posted": counters.posted,
        "peak_open": counters.peak_open,
        "all_attached_at": counters.all_attached_at,
        "started": started,
        "wall_s": loop.time() - t0,
        "cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
    }


def main(argv: list[str]) -> int:
    """`python -m bench.sse_client SPEC.json OUT.json`."""
    raise_fd_limit()
    with open(argv[0]) as handle:
        spec = StreamSpec(**json.load(handle))
    result = asyncio.run(_run(spec))
    with open(argv[1], "w") as handle:
        json.dump(result, handle)
    return 0


# -- the parent side ----------------------------------------------------------------------


@dataclass
class StreamResult:
    streams: list[StreamRecord]
    post_errors: list[str]
    posted: int
    peak_open: int
    all_attached_at: float
    wall_s: float
    cpu_s: float
    extra: dict[str, Any]

    @property
    def errors(self) -> list[StreamRecord]:
        return [s for s in self.streams if s.error]


class StreamClient:
    """Runs a `StreamSpec` in a child process; the parent watches its status meanwhile."""

    def __init__(self, spec: StreamSpec) -> None:
        self.tmp = tempfile.mkdtemp(prefix="bench-sse-")
        spec.status_path = os.path.join(self.tmp, "status.json")
        spec.go_path = os.path.join(self.tmp, "go")
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | None = None

    def status(self) -> dict[str, Any]:
        try:
            with open(self.spec.status_path) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        """Let a `hold` fanout open its streams."""
        with open(self.spec.go_path, "w"):
            pass

    def run(
        self, on_tick: Callable[[dict[str, Any]], None] | None = None, tick_seconds: float = 0.05
    ) -> StreamResult:
        """Run to the end; `on_tick(status)` every tick meanwhile.

        :raises RuntimeError: when the child fails or overruns its own bound.
        """
        import shutil

        spec_path = os.path.join(self.tmp, "spec.json")
        out_path = os.path.join(self.tmp, "out.json")
        err_path = os.path.join(self.tmp, "stderr.txt")
        try:
            with open(spec_path, "w") as handle:
                json.dump(asdict(self.spec), handle)
            with open(err_path, "wb") as err:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "bench.sse_client", spec_path, out_path],
                    cwd=ROOT,
                    stderr=err,
                )
            hard_deadline = time.monotonic() + self.spec.max_seconds + 60
            while self.proc.poll() is None:
                if time.monotonic() > hard_deadline:
                    self.proc.kill()
                    self.proc.wait()
                    raise RuntimeError("the stream client overran its time bound")
                if on_tick is not None:
                    on_tick(self.status())
                time.sleep(tick_seconds)
            with open(err_path, errors="replace") as handle:
                stderr = handle.read()
            if self.proc.returncode != 0:
                raise RuntimeError(f"the stream client failed:\n{stderr[-3000:]}")
            with open(out_path) as handle:
                raw = json.load(handle)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        streams = [StreamRecord(**s) for s in raw.pop("streams")]
        keys = ("post_errors", "posted", "peak_open", "all_attached_at", "wall_s", "cpu_s")
        fixed = {k: raw.pop(k) for k in keys}
        return StreamResult(streams=streams, extra=raw, **fixed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
