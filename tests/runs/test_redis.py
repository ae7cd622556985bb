"""What only the Redis backend has to survive: losing its subscription."""

from __future__ import annotations

import time
from collections.abc import Iterator

import gevent
import pytest
import redis

from comfysync.runs import RunRecord
from comfysync.runs.redis import RedisRunStore


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as admin:
        admin.flushdb()
        yield admin


def test_wake_ups_come_back_after_the_subscription_is_lost(
    redis_url: str, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    store, other = RedisRunStore(redis_url), RedisRunStore(redis_url)
    try:
        run, _ = store.create(RunRecord.new({}))
        limit = client.config_get("maxclients")["maxclients"]

        def outage() -> None:
            client.client_kill_filter(_type="pubsub")
            # No new connection for a while: the first attempts to subscribe again fail.
            client.config_set("maxclients", len(client.client_list()))
            gevent.spawn_later(0.6, client.config_set, "maxclients", limit)

        gevent.spawn_later(0.05, outage)
        # A waiter during the outage is woken once the subscriber is back: it
        # may have missed changes, so it re-reads the store.
        started = time.monotonic()
        assert store.wait_for_change(run.id, timeout=5)
        assert 0.6 <= time.monotonic() - started < 4
        assert caplog.text.count("subscription lost") >= 2
        # And changes made elsewhere (another connection, another origin) wake it again.
        gevent.spawn_later(0.05, other.update, run.id, progress={"current": 1})
        assert store.wait_for_change(run.id, timeout=5)
        assert store.get(run.id).progress == {"current": 1}  # type: ignore[union-attr]
    finally:
        other.close()
        store.close()
