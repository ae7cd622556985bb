"""Kill -9 of the whole service (and of ComfyUI) at a random moment: nothing accepted is lost.

Each test starts 20 runs, waits for the phase it means to hit (runs still in
the gateway's queue, prompts executing in ComfyUI, outputs uploading to a
slow S3 bucket), then waits a seeded random extra moment and SIGKILLs the
gunicorn master and its workers. A new service on the same data folder must
finish every run with the right pixels, each exactly once.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from ..conftest import S3_BUCKET
from .harness import Gateway, Simulator, chain, until
from .pictures import inverted, pixel

pytestmark = pytest.mark.e2e

RUNS = 20
SEED = int(os.environ.get("KILL_SEED", str(int(time.time()))))


class SlowProxy:
    """A TCP forwarder that holds every chunk a client sends for `delay` seconds.

    In front of the S3 server it makes uploads slow enough to be caught.
    """

    def __init__(self, target: str, delay: float) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, slow: bool) -> None:
        try:
            while data := source.recv(65536):
                if slow:
                    time.sleep(self.delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self) -> None:
        self.closed = True
        self.listener.close()


@pytest.fixture
def slow_s3(s3_bucket, moto_endpoint: str) -> Iterator[tuple[object, str]]:
    proxy = SlowProxy(moto_endpoint, delay=0.15)
    yield s3_bucket, proxy.url
    proxy.close()


@pytest.fixture(params=["sqlite", "redis"])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The run store the service uses: SQLite in its data folder, or a real Redis."""
    if request.param == "sqlite":
        return {}
    url = request.getfixturevalue("redis_url")
    import redis

    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return {"REDIS_URL": url}


@pytest.fixture
def comfy(store_env: dict[str, str]) -> Iterator[Simulator]:
    """One simulator per test, of each ComfyUI version in turn (one per store)."""
    simulator = Simulator("0.27" if store_env else "0.3.64").start()
    yield simulator
    simulator.stop()


def _service(sim: Simulator, s3_url: str, make_gateway, **env: str) -> Gateway:
    return make_gateway(
        sim.url,
        workers=2,
        STORAGE_PROVIDER="s3",
        SPACES_ENDPOINT=s3_url,
        SPACES_BUCKET=S3_BUCKET,
        SPACES_KEY="admin",
        SPACES_SECRET="admin",
        STORAGE_RETRIES="0",
        UPLOAD_TIMEOUT="60",
        COMFYUI_MAX_INFLIGHT="2",
        RUN_OWNER_TTL="1",
        RUN_RETRY_BASE="0.2",
        RUN_TIMEOUT="300",
        **env,
    )


def _phase_reached(gateway: Gateway, sim: Simulator, phase: str) -> bool:
    if phase == "executing":
        return bool(sim.get("/queue")["queue_running"])
    status = "not-started" if phase == "queued" else "uploading"
    response = gateway.get(f"/api/runs?status={status}&limit=1")
    assert response.status_code == 200, response.text
    return bool(response.json()["runs"])


@pytest.mark.parametrize("comfy_dies_too", [False, True], ids=["service", "service+comfyui"])
@pytest.mark.parametrize("phase", ["queued", "executing", "uploading"])
def test_kill_9_loses_nothing(
    comfy: Simulator,
    store_env: dict[str, str],
    make_gateway,
    slow_s3,
    phase: str,
    comfy_dies_too: bool,
) -> None:
    sim = comfy
    bucket, s3_url = slow_s3
    rng = random.Random(f"{SEED}-{phase}-{comfy_dies_too}-{sim.version}")
    extra = rng.uniform(0, 0.3)
    print(f"kill point: seed {SEED}, phase {phase}, then {extra * 1000:.0f} ms")
    sim.control("config", node_delay_ms=60)
    gateway = _service(sim, s3_url, make_gateway, **store_env)
    colors = {}
    for i in range(RUNS):
        color = 0x100000 + i * 0x0A0B0C
        response = gateway.post("/api/run", json={"workflow_data": chain(color, blur=1)})
        assert response.status_code == 201, response.text
        colors[response.json()["run_id"]] = color
    until(lambda: _phase_reached(gateway, sim, phase), timeout=60)
    time.sleep(extra)
    gateway.kill9()
    if comfy_dies_too:
        sim.kill9()
        sim.restart()
    gateway.restart()

    records = {}
    for run_id in colors:
        records[run_id] = until(
            lambda run_id=run_id: (
                (body := gateway.get(f"/api/status/{run_id}").json())["status"]
                in ("success", "failed", "cancelled")
                and body
            ),
            timeout=120,
        )
    failed = {k: v for k, v in records.items() if v["status"] != "success"}
    assert not failed, failed
    for run_id, record in records.items():
        assert len(record["images"]) == 1
        assert record["storage"] == "s3", record
        image = requests.get(record["url"], timeout=30)  # a presigned URL of the bucket
        assert pixel(image.content) == inverted(colors[run_id])
        remote = bucket.list_objects_v2(
            Bucket=S3_BUCKET, Prefix=f"outputs/runs/{record['prompt_id']}/"
        )
        assert remote.get("KeyCount") == 1, (run_id, remote)
    if not comfy_dies_too:
        # Every run's prompt ran exactly once in ComfyUI: none resubmitted after the kill.
        tokens = [run_id.replace("-", "") for run_id in colors]
        prefixes = [
            node["inputs"]["filename_prefix"]
            for entry in sim.get("/history?max_items=1000").values()
            for node in entry["prompt"][2].values()
            if "filename_prefix" in node["inputs"]
        ]
        for token in tokens:
            assert sum(token in prefix for prefix in prefixes) == 1, token
