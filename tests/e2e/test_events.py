"""Run events as Server-Sent Events, against the real service and the simulator."""

from __future__ import annotations

import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest

from .harness import Gateway, Simulator, until
from .sse import Event, Stream, open_stream, txt2img

FINAL = {"succeeded", "failed", "cancelled"}


def _run(gateway: Gateway, body: dict) -> str:
    response = gateway.post("/api/run", json=body)
    assert response.status_code == 201, response.text
    return response.json()["run_id"]


def _events_url(gateway: Gateway, run_id: str) -> str:
    return f"{gateway.url}/api/status/{run_id}/events"


def _check_run_story(events: list[Event], steps: int = 4) -> None:
    """Ids 1..n without gaps; queued, started, progress that only grows, executed, succeeded."""
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    kinds = [e.type for e in events]
    assert kinds[0] == "queued" and kinds[1] == "started" and kinds[-1] == "succeeded"
    assert kinds.count("succeeded") == 1 and not FINAL & set(kinds[:-1])
    progress = [e.data for e in events if e.type == "progress"]
    done = [p["nodes_done"] for p in progress]
    # Seven nodes; a simulator that ran the same graph before has some cached (not counted).
    total = progress[-1]["nodes_total"]
    assert done == sorted(done) and 3 <= total <= 7 and done[-1] == total - 1
    assert {p["nodes_total"] for p in progress} == {total}
    sampler = [p for p in progress if p["node_type"] == "KSampler"]
    assert sampler and sampler[-1]["value"] == sampler[-1]["max"] == steps
    executed = [e.data for e in events if e.type == "executed"]
    assert [x["node"] for x in executed] == ["9"]
    assert executed[0]["output"]["images"][0]["filename"].endswith(".png")


def test_a_runs_events_in_order_then_the_answer(shared_sim: Simulator, shared_gateway) -> None:
    shared_sim.control("config", node_delay_ms=20)
    try:
        run_id = _run(shared_gateway, {"workflow_data": txt2img(steps=4, seed=5)})
        stream = open_stream(_events_url(shared_gateway, run_id))
        events = stream.all()
    finally:
        shared_sim.control("config", node_delay_ms=0)
    _check_run_story(events)
    answer = events[-1].data
    status = shared_gateway.get(f"/api/status/{run_id}").json()
    assert answer["run_id"] == run_id and answer["url"] == status["url"]
    assert answer["images"] == status["images"]
    assert status["progress"] == {"current": 7, "total": 7, "message": "done"}
    assert shared_gateway.get(answer["url"]).status_code == 200


def test_generate_with_accept_event_stream_streams_then_answers(
    shared_sim: Simulator, shared_gateway
) -> None:
    stream = open_stream(
        f"{shared_gateway.url}/api/generate",
        method="POST",
        json={"workflow_data": txt2img(steps=4, seed=7)},
    )
    run_id = stream.response.headers["X-Run-Id"]
    assert stream.response.headers["Location"] == f"/api/status/{run_id}/events"
    events = stream.all()
    _check_run_story(events)
    # The final event is the sync answer itself.
    sync = shared_gateway.post("/api/generate", json={"workflow_data": txt2img(steps=4, seed=8)})
    assert set(events[-1].data) == set(sync.json())
    assert shared_gateway.get(events[-1].data["url"]).status_code == 200


def test_resume_with_last_event_id_mid_run_and_after_the_end(
    shared_sim: Simulator, shared_gateway
) -> None:
    shared_sim.control("config", class_delay_ms={"KSampler": 1500})
    try:
        run_id = _run(shared_gateway, {"workflow_data": txt2img(steps=6, seed=11)})
        first = open_stream(_events_url(shared_gateway, run_id))
        seen = first.until("progress")
        first.close()  # the client drops mid-run
        resumed = open_stream(
            _events_url(shared_gateway, run_id), headers={"Last-Event-ID": str(seen[-1].id)}
        )
        rest = resumed.all()
    finally:
        shared_sim.control("config", class_delay_ms={})
    assert rest[0].id == seen[-1].id + 1
    _check_run_story(seen + rest, steps=6)
    # After the end: the missed part replayed, then the stream ends.
    again = open_stream(_events_url(shared_gateway, run_id), headers={"Last-Event-ID": "2"}).all()
    assert [(e.id, e.type, e.data) for e in again] == [
        (e.id, e.type, e.data) for e in (seen + rest)[2:]
    ]
    # ?last_event_id= works where headers cannot be set; a bad id is a 400.
    tail = open_stream(_events_url(shared_gateway, run_id) + f"?last_event_id={rest[-2].id}")
    assert [e.type for e in tail.all()] == ["succeeded"]
    bad = shared_gateway.get(f"/api/status/{run_id}/events", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 400 and bad.json()["error_type"] == "bad_request"


def test_unknown_run_is_a_404(shared_gateway) -> None:
    response = shared_gateway.get(
        "/api/status/no-such-run/events", headers={"Accept": "text/event-stream"}
    )
    assert response.status_code == 404 and response.json()["error_type"] == "not_found"


def test_heartbeat_comments_on_a_quiet_stream(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url, SSE_HEARTBEAT="0.3")
    sim.control("config", class_delay_ms={"KSampler": 2000})
    run_id = _run(gateway, {"workflow_data": txt2img(steps=1)})
    stream = open_stream(_events_url(gateway, run_id))
    events = stream.all()
    assert events[-1].type == "succeeded"
    assert stream.comments.count("keep-alive") >= 3


def test_status_progress_follows_the_run(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url)
    sim.control("config", class_delay_ms={"KSampler": 3000})
    run_id = _run(gateway, {"workflow_data": txt2img(steps=3)})
    stream = open_stream(_events_url(gateway, run_id))
    for event in stream.events():
        if event.type == "progress" and event.data["node_type"] == "KSampler":
            break

    def sampling() -> dict | None:
        body = gateway.get(f"/api/status/{run_id}").json()
        return body if body["progress"]["message"].startswith("KSampler 1/3") else None

    body = until(sampling)
    assert body["status"] == "running"
    assert body["progress"] == {"current": 4, "total": 7, "message": "KSampler 1/3"}
    stream.close()


def _serving_pid(gateway: Gateway, stream: Stream) -> int:
    """The worker whose socket holds this client's connection (from /proc)."""
    port = stream.server_port()
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                cols = line.split()
                remote_port = int(cols[2].rsplit(":", 1)[1], 16)
                if remote_port == port:
                    inode = cols[9]
    assert inode is not None
    from .harness import _children

    for pid in _children(gateway.proc.pid):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError("no worker holds the connection")


def _owner_pid(gateway: Gateway, run_id: str) -> int:
    path = os.path.join(gateway.workdir, "data", "runs.sqlite3")
    with sqlite3.connect(path) as db:
        (owner,) = db.execute("SELECT owner FROM runs WHERE id = ?", (run_id,)).fetchone()
    return int(owner.split(":")[1])


def test_a_stream_on_one_worker_follows_a_run_of_another(sim: Simulator, make_gateway) -> None:
    gateway = make_gateway(sim.url, workers=2)
    sim.control("config", class_delay_ms={"KSampler": 1500})
    run_id = _run(gateway, {"workflow_data": txt2img(steps=4)})
    owner = until(lambda: _owner_pid(gateway, run_id))
    streams: list[Stream] = []
    # New connections land on either worker; open them until one is on the other.
    while not any(_serving_pid(gateway, s) != owner for s in streams):
        assert len(streams) < 40, "every connection landed on the run's own worker"
        streams.append(open_stream(_events_url(gateway, run_id)))
    with ThreadPoolExecutor(len(streams)) as pool:
        results = list(pool.map(Stream.all, streams))
    for events in results:
        _check_run_story(events)
    assert len({tuple((e.id, e.type) for e in events) for events in results}) == 1


@pytest.mark.parametrize("version", ["0.27"])
def test_streams_on_two_instances_over_redis(version: str, redis_url: str, make_gateway) -> None:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
    sim = Simulator(version).start()
    try:
        sim.control("config", class_delay_ms={"KSampler": 1000})
        first = make_gateway(sim.url, REDIS_URL=redis_url)
        second = make_gateway(sim.url, REDIS_URL=redis_url)
        run_id = _run(first, {"workflow_data": txt2img(steps=4)})
        # One instance dispatches the run; the stream on the other one hears it through Redis.
        streams = [open_stream(_events_url(g, run_id)) for g in (first, second)]
        with ThreadPoolExecutor(2) as pool:
            on_first, on_second = pool.map(Stream.all, streams)
        _check_run_story(on_first)
        assert [(e.id, e.type, e.data) for e in on_second] == [
            (e.id, e.type, e.data) for e in on_first
        ]
    finally:
        sim.stop()
