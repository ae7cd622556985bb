"""The RunStore contract for run events and the webhook outbox, on SQLite and on Redis."""

from __future__ import annotations

import time

import gevent

from comfysync.runs import FAILED, QUEUED, RUNNING, SUCCESS, RunRecord, RunStore
from comfysync.runs.base import DELIVERED, PENDING, Delivery


def queued(store: RunStore, events=()) -> RunRecord:
    run, new = store.create(RunRecord.new({"workflow": "w"}), events=events)
    assert new
    return run


def delivery(
    run_id: str, n: int = 0, *, next_at: float = 0.0, url: str = "https://r/h"
) -> Delivery:
    return Delivery(
        id=f"msg_{run_id}_{n}",
        run_id=run_id,
        event="run.succeeded",
        url=url,
        body=f'{{"type":"run.succeeded","n":{n}}}',
        created_at=time.time() + n * 1e-3,
        next_at=next_at,
    )


# -- events ------------------------------------------------------------------------------------


def test_events_are_numbered_per_run_from_one_without_gaps(store: RunStore) -> None:
    a = queued(store, events=[("queued", {"position": 0})])
    b = queued(store)
    store.append_events([(a.id, "started", {}), (b.id, "started", {"x": 1})])
    store.append_events([(a.id, "progress", {"value": 1, "max": 2, "name": "é"})])
    store.update(a.id, status=SUCCESS, events=[("succeeded", {"status": "success"})])

    events = store.events(a.id)
    assert [(e.seq, e.type) for e in events] == [
        (1, "queued"),
        (2, "started"),
        (3, "progress"),
        (4, "succeeded"),
    ]
    assert events[2].data == {"value": 1, "max": 2, "name": "é"}
    assert all(e.at > 0 for e in events)
    assert [(e.seq, e.type, e.data) for e in store.events(b.id)] == [(1, "started", {"x": 1})]


def test_events_after_a_seq_and_limited(store: RunStore) -> None:
    run = queued(store)
    store.append_events([(run.id, "progress", {"value": i}) for i in range(10)])
    assert [e.seq for e in store.events(run.id, after=7)] == [8, 9, 10]
    assert [e.seq for e in store.events(run.id, after=2, limit=3)] == [3, 4, 5]
    assert store.events(run.id, after=10) == []
    assert store.last_event(run.id).seq == 10
    assert store.last_event(run.id).data == {"value": 9}


def test_no_events_for_unknown_runs(store: RunStore) -> None:
    store.append_events([("no-such-run", "started", {})])
    assert store.events("no-such-run") == []
    assert store.last_event("no-such-run") is None


def test_a_refused_update_adds_no_event_and_no_delivery(store: RunStore) -> None:
    run = queued(store)
    refused = store.update(
        run.id,
        expect={RUNNING},
        status=SUCCESS,
        events=[("succeeded", {})],
        deliveries=[delivery(run.id)],
    )
    assert refused is None
    assert store.events(run.id) == []
    assert store.deliveries(run.id) == []
    assert store.get(run.id).status == QUEUED


def test_an_idempotent_create_adds_no_event(store: RunStore) -> None:
    record = RunRecord.new({}, idempotency_key="k", body_hash="h")
    first, _ = store.create(record, events=[("queued", {})])
    again, new = store.create(
        RunRecord.new({}, idempotency_key="k", body_hash="h"), events=[("queued", {})]
    )
    assert not new and again.id == first.id
    assert [e.seq for e in store.events(first.id)] == [1]


def test_wait_for_events_wakes_on_appended_and_final_events(store: RunStore) -> None:
    run = queued(store)
    gevent.spawn_later(0.05, store.append_events, [(run.id, "started", {})])
    assert store.wait_for_events(run.id, timeout=5)
    gevent.spawn_later(0.05, store.update, run.id, status=FAILED, events=[("failed", {})])
    assert store.wait_for_events(run.id, timeout=5)
    # A change without events does not wake event streams.
    gevent.spawn_later(0.05, store.update, run.id, progress={"current": 1})
    assert not store.wait_for_events(run.id, timeout=0.3)


def test_prune_deletes_events_and_deliveries(store: RunStore) -> None:
    old = queued(store, events=[("queued", {})])
    store.update(
        old.id,
        status=SUCCESS,
        ended_at=1.0,
        events=[("succeeded", {})],
        deliveries=[delivery(old.id)],
    )
    kept = queued(store, events=[("queued", {})])
    assert store.prune(2.0) == 1
    assert store.events(old.id) == []
    assert store.deliveries(old.id) == []
    assert store.due_deliveries(time.time(), lease=30, limit=10) == []
    assert [e.type for e in store.events(kept.id)] == ["queued"]


# -- the webhook outbox ------------------------------------------------------------------------


def test_deliveries_are_recorded_with_the_update(store: RunStore) -> None:
    run = queued(store)
    first, second = delivery(run.id, 0), delivery(run.id, 1, url="https://other/h")
    store.update(run.id, status=SUCCESS, deliveries=[first, second])
    assert store.deliveries(run.id) == [first, second]
    assert store.next_delivery_at() == 0.0


def test_due_deliveries_are_leased_soonest_first(store: RunStore) -> None:
    run = queued(store)
    now = time.time()
    later = delivery(run.id, 0, next_at=now + 60)
    soon = delivery(run.id, 1, next_at=now - 1)
    sooner = delivery(run.id, 2, next_at=now - 2)
    store.update(run.id, status=SUCCESS, deliveries=[later, soon, sooner])

    taken = store.due_deliveries(now, lease=30, limit=10)
    assert [d.id for d in taken] == [sooner.id, soon.id]
    assert all(d.next_at == now + 30 for d in taken)
    # Leased: nobody else takes them until the lease is over.
    assert store.due_deliveries(now + 1, lease=30, limit=10) == []
    assert len(store.due_deliveries(now + 31, lease=30, limit=1)) == 1
    assert store.next_delivery_at() == now + 30


def test_saved_deliveries_keep_their_state(store: RunStore) -> None:
    run = queued(store)
    pending = delivery(run.id)
    store.update(run.id, status=SUCCESS, deliveries=[pending])
    (taken,) = store.due_deliveries(time.time(), lease=30, limit=10)
    taken.attempts = 1
    taken.state = DELIVERED
    taken.last_status = 204
    taken.delivered_at = 123.5
    store.save_delivery(taken)
    assert store.deliveries(run.id) == [taken]
    assert store.next_delivery_at() is None
    assert store.due_deliveries(time.time() + 3600, lease=30, limit=10) == []
    # Sent again: pending and due.
    taken.state = PENDING
    taken.next_at = 0.0
    store.save_delivery(taken)
    assert [d.id for d in store.due_deliveries(time.time(), lease=30, limit=10)] == [taken.id]


def test_wait_for_deliveries_wakes_when_one_is_recorded(store: RunStore) -> None:
    run = queued(store)
    gevent.spawn_later(0.05, store.update, run.id, status=SUCCESS, deliveries=[delivery(run.id)])
    assert store.wait_for_deliveries(timeout=5)
