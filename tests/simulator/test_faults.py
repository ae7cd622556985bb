"""Fault injection (/_sim/ control API), parallel mode and timing knobs."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
import websocket

from comfysync.simulator import SimulatorThread


def chain(color: int, prefix: str = "t", size: int = 16) -> dict:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"filename_prefix": prefix, "images": ["2", 0]}},
    }


def post(sim: SimulatorThread, prompt: dict, client_id: str | None = None) -> str:
    body: dict = {"prompt": prompt}
    if client_id:
        body["client_id"] = client_id
    r = requests.post(sim.url + "/prompt", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["prompt_id"]


def wait_history(sim: SimulatorThread, pid: str, timeout: float = 10.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        h = requests.get(f"{sim.url}/history/{pid}", timeout=5).json()
        if h:
            return h[pid]
        time.sleep(0.02)
    raise AssertionError(f"no history for {pid}")


def recv_until(ws: websocket.WebSocket, pred, timeout: float = 10.0) -> list[dict]:
    ws.settimeout(timeout)
    seen = []
    while True:
        raw = ws.recv()
        if isinstance(raw, bytes):
            continue
        msg = json.loads(raw)
        seen.append(msg)
        if pred(msg):
            return seen


@pytest.fixture
def sim(tmp_path):
    with SimulatorThread(data_dir=str(tmp_path)) as s:
        yield s


def test_drop_sockets_closes_tcp(sim: SimulatorThread) -> None:
    ws = websocket.create_connection(sim.ws_url + "?clientId=c1", timeout=5)
    ws.recv()
    r = requests.post(sim.url + "/_sim/drop_sockets", timeout=5)
    assert r.json() == {"dropped": 1}
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
        ws.settimeout(5)
        ws.recv()
    stats = requests.get(sim.url + "/_sim/stats", timeout=5).json()
    assert stats["ws_open"] == 0 and stats["ws_accepted_total"] == 1


def test_stall_withholds_frames_and_pongs(sim: SimulatorThread) -> None:
    ws = websocket.create_connection(sim.ws_url + "?clientId=c2", timeout=5)
    ws.recv()
    ws.ping(b"before")
    ws.settimeout(5)
    assert ws.recv_data_frame(True)[1].data == b"before"
    requests.post(sim.url + "/_sim/stall", json={"seconds": 0.6}, timeout=5)
    ws.ping(b"during")
    pid = post(sim, chain(1), "c2")
    wait_history(sim, pid)
    ws.settimeout(0.3)
    with pytest.raises(websocket.WebSocketTimeoutException):
        ws.recv_data_frame(True)  # no pong, no frames while stalled
    time.sleep(0.5)
    # After the stall the link works again; frames produced meanwhile were lost.
    ws.ping(b"after")
    ws.settimeout(5)
    frame = ws.recv_data_frame(True)[1]
    assert frame.data in (b"after", b"during")
    pid2 = post(sim, chain(2), "c2")
    msgs = recv_until(ws, lambda m: m["type"] == "executing" and m["data"]["node"] is None)
    assert all(m["data"].get("prompt_id", pid2) != pid for m in msgs)
    ws.close()


def test_unstall_ends_stall_early(sim: SimulatorThread) -> None:
    ws = websocket.create_connection(sim.ws_url + "?clientId=c3", timeout=5)
    ws.recv()
    requests.post(sim.url + "/_sim/stall", json={"seconds": 30}, timeout=5)
    requests.post(sim.url + "/_sim/unstall", timeout=5)
    ws.ping(b"x")
    ws.settimeout(5)
    assert ws.recv_data_frame(True)[1].data == b"x"
    ws.close()


def test_restart_loses_queue_history_and_counter(sim: SimulatorThread) -> None:
    requests.post(sim.url + "/_sim/config", json={"node_delay_ms": 200}, timeout=5)
    ws = websocket.create_connection(sim.ws_url + "?clientId=c4", timeout=5)
    ws.recv()
    first = post(sim, chain(3), "c4")
    for i in range(3):
        post(sim, chain(10 + i), "c4")
    assert requests.get(sim.url + "/prompt", timeout=5).json()["exec_info"]["queue_remaining"] == 4
    r = requests.post(sim.url + "/_sim/restart", json={"down_seconds": 0.5}, timeout=5)
    assert r.json()["restarted"] is True
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
        ws.settimeout(5)
        while True:
            ws.recv()
    down = requests.get(sim.url + "/queue", timeout=5)
    assert down.status_code == 503
    time.sleep(0.6)
    assert requests.get(sim.url + "/queue", timeout=5).json() == {
        "queue_running": [],
        "queue_pending": [],
    }
    assert requests.get(f"{sim.url}/history/{first}", timeout=5).json() == {}
    requests.post(sim.url + "/_sim/config", json={"node_delay_ms": 0}, timeout=5)
    r = requests.post(sim.url + "/prompt", json={"prompt": chain(4)}, timeout=5)
    assert r.json()["number"] == 0  # the counter restarts too
    assert requests.get(sim.url + "/_sim/stats", timeout=5).json()["restarts"] == 1


def test_http_fault_and_delay_rules(sim: SimulatorThread) -> None:
    requests.post(
        sim.url + "/_sim/config",
        timeout=5,
        json={
            "fail": {"path": "/prompt", "status": 500, "count": 1},
            "http_delay_ms": {"/queue": 150},
        },
    )
    assert (
        requests.post(sim.url + "/api/prompt", json={"prompt": chain(5)}, timeout=5).status_code
        == 500
    )
    assert (
        requests.post(sim.url + "/prompt", json={"prompt": chain(5)}, timeout=5).status_code == 200
    )
    t = time.monotonic()
    requests.get(sim.url + "/queue", timeout=5)
    assert time.monotonic() - t >= 0.15


def test_parallel_runs_jobs_concurrently(tmp_path) -> None:
    with SimulatorThread(data_dir=str(tmp_path), parallel=3, node_delay_ms=150) as sim:
        t = time.monotonic()
        pids = [post(sim, chain(100 + i, f"p{i}")) for i in range(3)]
        queue = requests.get(sim.url + "/queue", timeout=5).json()
        for pid in pids:
            assert wait_history(sim, pid)["status"]["status_str"] == "success"
        elapsed = time.monotonic() - t
        assert len(queue["queue_running"]) + len(queue["queue_pending"]) == 3
    # Three 3-node jobs at 150 ms per node: ~0.45 s in parallel, ~1.35 s one at a time.
    assert elapsed < 1.1


def test_serial_order_follows_number(tmp_path) -> None:
    with SimulatorThread(data_dir=str(tmp_path), node_delay_ms=50) as sim:
        blocker = post(sim, chain(1, "b"))
        later = post(sim, chain(2, "l"))
        r = requests.post(
            sim.url + "/prompt", json={"prompt": chain(3, "f"), "front": True}, timeout=5
        )
        front = r.json()["prompt_id"]
        done = {
            p: wait_history(sim, p)["status"]["messages"][0][1]["timestamp"]
            for p in (blocker, later, front)
        }
        assert done[blocker] <= done[front] <= done[later]


def test_job_duration_range(tmp_path) -> None:
    with SimulatorThread(data_dir=str(tmp_path), job_duration_ms="200-300") as sim:
        t = time.monotonic()
        wait_history(sim, post(sim, chain(7)))
        assert 0.18 <= time.monotonic() - t < 2.0


def test_cli_prints_url_and_ready_file(tmp_path) -> None:
    import subprocess
    import sys

    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "comfysync.simulator",
            "--port",
            "0",
            "--comfy-version",
            "0.27",
            "--data-dir",
            str(tmp_path / "d"),
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("comfyui-simulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert ready.read_text().strip() == url
        assert (
            requests.get(url + "/system_stats", timeout=5).json()["system"]["comfyui_version"]
            == "0.27.0"
        )
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_port_is_free_after_stop(tmp_path) -> None:
    with SimulatorThread(data_dir=str(tmp_path)) as sim:
        port = sim.port
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
