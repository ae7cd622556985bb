"""What the backends share: the record's JSON, cursors, and waking every waiter."""

from __future__ import annotations

import json

import gevent
import pytest

from comfysync.errors import BadRequest
from comfysync.runs.base import ChangeWaiters, RunRecord, cursor_seq, seq_cursor


def test_a_record_from_a_newer_version_keeps_what_it_knows() -> None:
    record = RunRecord.new({"workflow": "w"}, graph={"1": {"inputs": {}}}, priority=2)
    data = json.loads(record.to_json())
    assert RunRecord.from_json(record.to_json()) == record
    newer = json.dumps({**data, "added_later": {"x": 1}})
    assert RunRecord.from_json(newer) == record


@pytest.mark.parametrize("cursor", ["", "-1", "1.5", "²", "1" * 20, "abc"])
def test_a_cursor_not_made_by_the_store_is_a_bad_request(cursor: str) -> None:
    with pytest.raises(BadRequest):
        cursor_seq(cursor)
    assert cursor_seq(seq_cursor(42)) == 42


def test_notify_all_wakes_every_waiter() -> None:
    waiters = ChangeWaiters()
    waiting = [gevent.spawn(waiters.wait, key, 5) for key in ("a", "b", ChangeWaiters.QUEUE)]
    gevent.sleep(0)
    waiters.notify_all()
    assert [g.get(timeout=1) for g in waiting] == [True, True, True]
