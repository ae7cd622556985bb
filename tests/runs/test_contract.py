"""The RunStore contract, in one process: every test runs on SQLite and on Redis."""

from __future__ import annotations

import time
from dataclasses import asdict

import gevent
import pytest

from comfysync.errors import BadRequest
from comfysync.runs import (
    CANCELLED,
    DISPATCHING,
    FAILED,
    QUEUED,
    RUNNING,
    SUBMITTED,
    SUCCESS,
    UPLOADING,
    Claim,
    IdempotencyConflict,
    QueueFull,
    RunRecord,
    RunStore,
)


def queued(store: RunStore, **values) -> RunRecord:
    run, new = store.create(RunRecord.new({"workflow": "w"}, **values))
    assert new
    return run


def claim(store: RunStore, server: str = "s1", limit: int = 0, owner: str = "o1"):
    return store.claim(server, owner, limit=limit, prompt_id="p-" + server, client_id="c1")


# -- records -------------------------------------------------------------------------------


def test_create_then_get_returns_every_field(store: RunStore) -> None:
    record = RunRecord(
        id="5b1e1c0e-0000-4000-8000-000000000001",
        status=SUBMITTED,
        mode="sync",
        request={"workflow": "w", "params": {"seed": 7, "cfg": 6.5, "tags": ["a", "é"]}},
        graph={"3": {"class_type": "KSampler", "inputs": {"seed": 7}}},
        priority=-3,
        created_at=1796172926.539997,
        updated_at=1796172926.5400012,
        started_at=1796172927.25,
        ended_at=None,
        not_before=1796172926.0000002,
        server="http://comfy-1:8188",
        prompt_id="prompt-1",
        client_id="client-1",
        owner="worker-1",
        attempts=[{"prompt_id": "prompt-0", "server": "http://comfy-0:8188", "at": 1.5}],
        result={"status": "success", "images": []},
        files=[{"path": "a.png", "size": 12}],
        error={"error_type": "x", "status_code": 502},
        progress={"current": 3, "total": 20, "message": "sampling"},
        idempotency_key="key-1",
        body_hash="hash-1",
        cancel_requested=True,
    )
    stored, new = store.create(record)
    assert new
    assert stored.seq > 0
    assert asdict(stored) == {**asdict(record), "seq": stored.seq}
    assert store.get(record.id) == stored


def test_get_unknown_run_is_none(store: RunStore) -> None:
    assert store.get("no-such-run") is None


def test_seq_orders_creation(store: RunStore) -> None:
    seqs = [queued(store).seq for _ in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5


def test_same_idempotency_key_and_body_returns_the_first_run(store: RunStore) -> None:
    first, new = store.create(RunRecord.new({"a": 1}, idempotency_key="k", body_hash="h"))
    again, new_again = store.create(RunRecord.new({"a": 1}, idempotency_key="k", body_hash="h"))
    assert new and not new_again
    assert again == first
    assert len(store.list_runs(limit=10)[0]) == 1


def test_same_idempotency_key_with_another_body_is_a_conflict(store: RunStore) -> None:
    store.create(RunRecord.new({"a": 1}, idempotency_key="k", body_hash="h1"))
    with pytest.raises(IdempotencyConflict) as caught:
        store.create(RunRecord.new({"a": 2}, idempotency_key="k", body_hash="h2"))
    assert caught.value.code == 409
    assert caught.value.to_dict()["status_code"] == 409
    assert store.queued_count() == 1


def test_max_queued_refuses_a_queued_run_beyond_it(store: RunStore) -> None:
    kept = store.create(RunRecord.new({}, idempotency_key="k", body_hash="h"), max_queued=2)[0]
    store.create(RunRecord.new({}), max_queued=2)
    with pytest.raises(QueueFull) as caught:
        store.create(RunRecord.new({}), max_queued=2)
    assert caught.value.code == 429
    assert store.queued_count() == 2
    # A retry of an accepted run is answered, not refused; other statuses are not queued.
    again, new = store.create(RunRecord.new({}, idempotency_key="k", body_hash="h"), max_queued=2)
    assert (again.id, new) == (kept.id, False)
    assert store.create(RunRecord.new({}, status=SUCCESS), max_queued=2)[1]
    # Room again once one leaves the queue.
    claim(store)
    assert store.create(RunRecord.new({}), max_queued=2)[1]


def test_update_changes_fields_and_stamps_updated_at(store: RunStore) -> None:
    run = queued(store)
    before = time.time()
    changed = store.update(run.id, status=RUNNING, started_at=123.25, progress={"current": 1})
    assert changed is not None
    assert (changed.status, changed.started_at, changed.progress) == (
        RUNNING,
        123.25,
        {"current": 1},
    )
    assert changed.updated_at >= before
    assert store.get(run.id) == changed


def test_update_with_expect_is_a_compare_and_set(store: RunStore) -> None:
    run = queued(store)
    assert store.update(run.id, expect={RUNNING, SUBMITTED}, status=FAILED) is None
    assert store.get(run.id) == run
    won = store.update(run.id, expect={QUEUED}, status=CANCELLED)
    assert won is not None and won.status == CANCELLED
    assert store.update(run.id, expect={QUEUED}, status=DISPATCHING) is None
    assert store.get(run.id).status == CANCELLED  # type: ignore[union-attr]


def test_update_of_an_unknown_run_is_none(store: RunStore) -> None:
    assert store.update("no-such-run", status=RUNNING) is None
    assert store.update("no-such-run", expect={QUEUED}, status=RUNNING) is None


@pytest.mark.parametrize("field", ["id", "seq", "idempotency_key", "no_such_field"])
def test_update_refuses_fields_the_store_owns(store: RunStore, field: str) -> None:
    run = queued(store)
    with pytest.raises(ValueError):
        store.update(run.id, **{field: "x"})
    assert store.get(run.id) == run


# -- the queue -----------------------------------------------------------------------------


def test_claim_takes_highest_priority_then_oldest(store: RunStore) -> None:
    low = queued(store, priority=0)
    high_1 = queued(store, priority=5)
    mid = queued(store, priority=1)
    high_2 = queued(store, priority=5)
    negative = queued(store, priority=-2)
    order = [claim(store).id for _ in range(5)]  # type: ignore[union-attr]
    assert order == [high_1.id, high_2.id, mid.id, low.id, negative.id]
    assert claim(store) is None


def test_claim_waits_for_not_before(store: RunStore) -> None:
    later = queued(store, priority=9, not_before=time.time() + 0.4)
    now = queued(store, priority=0)
    assert claim(store).id == now.id  # type: ignore[union-attr]
    assert claim(store) is None
    time.sleep(0.45)
    assert claim(store).id == later.id  # type: ignore[union-attr]


def test_a_requeued_run_waits_for_its_new_not_before(store: RunStore) -> None:
    run = queued(store)
    assert claim(store) is not None
    store.update(run.id, status=QUEUED, not_before=time.time() + 0.3)
    assert claim(store) is None
    time.sleep(0.35)
    again = claim(store, server="s2")
    assert again is not None and again.id == run.id
    assert [a["server"] for a in again.attempts] == ["s1", "s2"]


def test_claim_sets_the_attempt_fields(store: RunStore) -> None:
    run = queued(store)
    before = time.time()
    claimed = store.claim("http://c:8188", "worker-9", limit=3, prompt_id="pid", client_id="cid")
    assert claimed is not None and claimed.id == run.id
    assert claimed.status == DISPATCHING
    assert (claimed.server, claimed.owner) == ("http://c:8188", "worker-9")
    assert (claimed.prompt_id, claimed.client_id) == ("pid", "cid")
    assert len(claimed.attempts) == 1
    attempt = claimed.attempts[0]
    assert (attempt["prompt_id"], attempt["server"]) == ("pid", "http://c:8188")
    assert before <= attempt["at"] <= time.time()
    assert claimed.updated_at >= before
    assert store.get(run.id) == claimed


def test_a_run_created_with_a_claim_is_claimed_once_either_way(store: RunStore) -> None:
    offer = Claim("http://c:8188", "worker-9", 0, "pid", "cid")
    run, new = store.create(RunRecord.new({}), claim=offer)
    assert new
    if run.status == QUEUED:  # a store that leaves claiming to the dispatcher
        run = claim(store, "http://c:8188")
        assert run is not None
    assert run.status == DISPATCHING and run.server == "http://c:8188"
    assert len(run.attempts) == 1 and run.attempts[0]["server"] == "http://c:8188"
    assert store.get(run.id) == run
    assert store.queued_count() == 0 and store.in_flight("http://c:8188") == 1
    assert claim(store, "http://c:8188") is None


def test_claim_respects_the_limit_of_each_server(store: RunStore) -> None:
    for _ in range(6):
        queued(store)
    assert claim(store, "a", limit=2) and claim(store, "a", limit=2)
    assert claim(store, "a", limit=2) is None
    assert claim(store, "b", limit=1) is not None
    assert claim(store, "b", limit=1) is None
    assert store.in_flight("a") == 2 and store.in_flight("b") == 1
    assert store.queued_count() == 3


def test_a_pinned_run_waits_for_its_server_while_others_pass_it(store: RunStore) -> None:
    pinned = queued(store, route={"server": "gpu2"})
    free = queued(store)
    assert claim(store, "gpu1").id == free.id  # type: ignore[union-attr]
    assert claim(store, "gpu1") is None
    got = claim(store, "gpu2")
    assert got is not None and got.id == pinned.id and got.route == {"server": "gpu2"}


def test_a_run_needing_tags_goes_only_to_a_server_with_all_of_them(store: RunStore) -> None:
    run = queued(store, route={"tags": ["sdxl", "big"]})
    take = store.claim
    assert take("a", "o", limit=0, prompt_id="p1", client_id="c", tags=["sdxl"]) is None
    assert take("b", "o", limit=0, prompt_id="p2", client_id="c") is None
    got = take("c", "o", limit=0, prompt_id="p3", client_id="c", tags=["big", "sdxl", "x"])
    assert got is not None and got.id == run.id and got.server == "c"


def test_any_ready_says_whether_a_claim_could_take_a_run_now(store: RunStore) -> None:
    assert not store.any_ready()
    later = queued(store, not_before=time.time() + 0.3)
    assert not store.any_ready()
    time.sleep(0.35)
    assert store.any_ready()
    assert claim(store).id == later.id  # type: ignore[union-attr]
    assert not store.any_ready()


def test_oldest_queued_lists_the_first_created_queued_runs(store: RunStore) -> None:
    first, second, third = queued(store), queued(store, priority=5), queued(store)
    assert claim(store).id == second.id  # type: ignore[union-attr]
    assert [r.id for r in store.oldest_queued(5)] == [first.id, third.id]
    assert [r.id for r in store.oldest_queued(1)] == [first.id]


def test_limit_zero_means_no_limit(store: RunStore) -> None:
    for _ in range(5):
        queued(store)
    assert all(claim(store, "a", limit=0) for _ in range(5))
    assert store.in_flight("a") == 5
    assert claim(store, "a", limit=0) is None


@pytest.mark.parametrize("leaves_to", [UPLOADING, FAILED, QUEUED])
def test_a_run_leaving_in_flight_frees_its_place(store: RunStore, leaves_to: str) -> None:
    queued(store)
    queued(store)
    first = claim(store, "a", limit=1)
    assert first is not None and claim(store, "a", limit=1) is None
    for status in (SUBMITTED, RUNNING):  # still in flight: still holding the place
        store.update(first.id, status=status)
        assert claim(store, "a", limit=1) is None
    store.update(first.id, status=leaves_to)
    assert store.in_flight("a") == 0
    assert claim(store, "a", limit=1) is not None


def test_in_flight_follows_a_change_of_server(store: RunStore) -> None:
    run = queued(store)
    claim(store, "a")
    store.update(run.id, server="b")
    assert (store.in_flight("a"), store.in_flight("b")) == (0, 1)


def test_queue_position_and_counts(store: RunStore) -> None:
    a = queued(store, priority=0)
    b = queued(store, priority=2)
    c = queued(store, priority=0, not_before=time.time() + 60)
    d = queued(store, priority=2)
    assert [store.queue_position(r.id) for r in (b, d, a, c)] == [0, 1, 2, 3]
    assert store.queued_count() == 4
    claimed = claim(store, "x")
    assert claimed is not None and claimed.id == b.id
    assert store.queue_position(b.id) is None
    assert [store.queue_position(r.id) for r in (d, a, c)] == [0, 1, 2]
    store.update(a.id, status=CANCELLED)
    assert store.queue_position(a.id) is None
    assert store.queue_position(c.id) == 1
    assert store.queue_position("no-such-run") is None
    assert store.queued_count() == 2
    assert (store.in_flight("x"), store.in_flight("y")) == (1, 0)


# -- listing -------------------------------------------------------------------------------


def test_list_runs_newest_first_with_a_status_filter(store: RunStore) -> None:
    runs = [queued(store) for _ in range(4)]
    store.update(runs[1].id, status=SUCCESS)
    store.update(runs[3].id, status=SUCCESS)
    listed, cursor = store.list_runs(limit=10)
    assert [r.id for r in listed] == [r.id for r in reversed(runs)]
    assert cursor is None
    done, _ = store.list_runs(status=SUCCESS)
    assert [r.id for r in done] == [runs[3].id, runs[1].id]
    assert store.list_runs(status=FAILED) == ([], None)


@pytest.mark.parametrize("status", [None, QUEUED])
def test_list_runs_pages_without_gaps_or_duplicates(store: RunStore, status: str | None) -> None:
    made = [queued(store) for _ in range(23)]
    for run in made[::5]:
        store.update(run.id, status=CANCELLED)  # other statuses interleaved
    expected = [
        r.id for r in reversed(made) if status is None or r.id not in {x.id for x in made[::5]}
    ]
    seen: list[str] = []
    pages = 0
    cursor = None
    while True:
        page, cursor = store.list_runs(status=status, limit=7, cursor=cursor)
        pages += 1
        seen += [r.id for r in page]
        if cursor is None:
            break
        assert len(page) == 7
    assert seen == expected
    assert pages == -(-len(expected) // 7)


def test_list_runs_refuses_a_cursor_it_did_not_make(store: RunStore) -> None:
    with pytest.raises(BadRequest):
        store.list_runs(cursor="'; DROP TABLE runs; --")


# -- owners and recovery -----------------------------------------------------------------------


def test_adopt_takes_the_runs_of_dead_owners_once(store: RunStore) -> None:
    store.heartbeat("alive", ttl=30)
    store.heartbeat("dead", ttl=0.05)
    time.sleep(0.1)
    owned = {}
    for status in (DISPATCHING, SUBMITTED, RUNNING, UPLOADING):
        for owner in ("alive", "dead", "never-beat"):
            run = queued(store)
            owned[run.id] = (owner, status)
            store.update(run.id, status=status, owner=owner)
    finished = queued(store)
    store.update(finished.id, status=SUCCESS, owner="dead")
    waiting = queued(store)
    store.update(waiting.id, owner="dead")

    adopted = store.adopt("new")
    expected = {rid for rid, (owner, _) in owned.items() if owner != "alive"}
    assert {r.id for r in adopted} == expected
    assert all(r.owner == "new" for r in adopted)
    assert {store.get(rid).owner for rid in expected} == {"new"}  # type: ignore[union-attr]
    assert {store.get(rid).status for rid in expected} == {  # type: ignore[union-attr]
        DISPATCHING,
        SUBMITTED,
        RUNNING,
        UPLOADING,
    }
    alive = [rid for rid, (owner, _) in owned.items() if owner == "alive"]
    assert {store.get(rid).owner for rid in alive} == {"alive"}  # type: ignore[union-attr]
    assert store.get(finished.id).owner == "dead"  # type: ignore[union-attr]
    assert store.get(waiting.id).owner == "dead"  # type: ignore[union-attr]
    # Nothing is left to adopt, by the same adopter or by a second one.
    assert store.adopt("new") == []
    store.heartbeat("new", ttl=30)
    assert store.adopt("other") == []


def test_a_heartbeat_keeps_an_owner_alive_past_its_first_ttl(store: RunStore) -> None:
    run = queued(store)
    store.update(run.id, status=RUNNING, owner="w")
    store.heartbeat("w", ttl=0.2)
    time.sleep(0.1)
    store.heartbeat("w", ttl=0.2)
    time.sleep(0.15)
    assert store.adopt("other") == []
    time.sleep(0.1)
    assert [r.id for r in store.adopt("other")] == [run.id]


def test_prune_deletes_only_runs_that_ended_before(store: RunStore) -> None:
    now = time.time()
    old = [queued(store, idempotency_key=f"k{i}", body_hash="h") for i in range(3)]
    for run, status in zip(old, (SUCCESS, FAILED, CANCELLED), strict=True):
        store.update(run.id, status=status, ended_at=now - 100)
    recent = queued(store)
    store.update(recent.id, status=SUCCESS, ended_at=now - 1)
    running = queued(store)
    store.update(running.id, status=RUNNING, ended_at=now - 100)  # not finished: kept
    waiting = queued(store)

    assert store.prune(now - 10) == 3
    assert [store.get(r.id) for r in old] == [None, None, None]
    assert all(store.get(r.id) for r in (recent, running, waiting))
    assert {r.id for r in store.list_runs(limit=50)[0]} == {recent.id, running.id, waiting.id}
    assert store.list_runs(status=SUCCESS)[0] == [store.get(recent.id)]
    assert store.prune(now - 10) == 0
    # The idempotency key of a pruned run is free again.
    again, new = store.create(RunRecord.new({}, idempotency_key="k0", body_hash="other"))
    assert new and again.id != old[0].id


def test_prune_in_batches(store: RunStore) -> None:
    for _ in range(1203):
        run = queued(store)
        store.update(run.id, status=SUCCESS, ended_at=1.0)
    assert store.prune(2.0) == 1203
    assert store.list_runs() == ([], None)


# -- wake-ups in one process ---------------------------------------------------------------------


def _later(delay: float, func, *args, **kwargs) -> gevent.Greenlet:
    return gevent.spawn_later(delay, func, *args, **kwargs)


def test_wait_for_change_wakes_on_an_update(store: RunStore) -> None:
    run = queued(store)
    other = queued(store)
    _later(0.05, store.update, run.id, progress={"current": 1})
    started = time.monotonic()
    assert store.wait_for_change(run.id, timeout=5)
    assert time.monotonic() - started < 1
    started = time.monotonic()
    assert not store.wait_for_change(other.id, timeout=0.1)
    assert 0.09 <= time.monotonic() - started < 1


def test_wait_for_work_wakes_on_a_new_queued_run(store: RunStore) -> None:
    _later(0.05, queued, store)
    started = time.monotonic()
    assert store.wait_for_work(timeout=5)
    assert time.monotonic() - started < 1


def test_wait_for_work_wakes_when_a_place_frees_up(store: RunStore) -> None:
    run = queued(store)
    claim(store)
    store.update(run.id, status=RUNNING)
    # Progress of a running run frees nothing: no wake-up.
    _later(0.02, store.update, run.id, progress={"current": 2})
    assert not store.wait_for_work(timeout=0.2)
    _later(0.02, store.update, run.id, status=UPLOADING)
    started = time.monotonic()
    assert store.wait_for_work(timeout=5)
    assert time.monotonic() - started < 1
