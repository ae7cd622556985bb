"""The run store in Redis: one truth for several gateway instances.

Every change is one Lua script, so it is atomic on the server and costs one
round trip. Keys, all under a prefix (`comfysync:` by default):

- `run:<id>`: a hash, one field per `RunRecord` field, each value JSON. A
  hash rather than one JSON string, so a script changes single fields with
  values Python encoded (Lua's cjson rounds floats to 14 digits, which loses
  the microseconds of epoch times, and cannot tell `[]` from `{}`).
- `seq`: the counter (INCR) that gives every run its `seq`.
- `all` and `status:<status>`: sorted sets of run ids by `seq`, for listing
  newest first with `seq` as the cursor.
- `queued`: a sorted set of every queued run, for `queue_position` (ZRANK)
  and `queued_count` (ZCARD). Score `-priority`; member `<seq, 20 digits>:<id>`,
  so ties sort by member, that is by `seq`: exact for any integer, where a
  combined score would round once priority times seq passes 2**53.
- `ready` (same order) and `delayed` (score `not_before`): the queued runs
  that may be claimed now, and those waiting for a retry time. A claim first
  moves the due ones from `delayed` to `ready`, then takes the head of
  `ready`: O(log n) however many runs wait for a retry.
- `inflight:<server>`: a set of the runs holding a place on that server (SCARD).
- `ended`: terminal runs by `ended_at`, for `prune`.
- `idem`: a hash from idempotency key to run id.
- `owner:<owner>`: `1` with a TTL (`SET ... PX`): alive while it exists.
- `events:<id>`: a list of the run's events, each `RunEvent.to_json` as Python
  encoded it; an event's `seq` is its 1-based place (RPUSH, LRANGE).
- `deliveries`: a hash from delivery id to its `Delivery.to_json`.
- `deliveries:<run id>`: a sorted set of the run's delivery ids by `created_at`.
- `outbox`: a sorted set of the pending delivery ids by `next_at`. While a
  delivery is pending its score, not its document, holds `next_at`: a lease
  moves only the score (a script cannot re-encode the document without
  rounding its floats), and every read takes `next_at` from there.
- channel `changes`: every script publishes the ids it changed (and the queue
  key when `wakes_queue` says so, a run's `events_key` when it got events, the
  outbox key when a delivery became pending); one subscriber greenlet per
  process feeds `waiters`. Nothing polls.

Scripts name their keys from the prefix rather than through KEYS, so this
needs one Redis server (or a Sentinel-managed primary), not a Redis Cluster.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Collection, Iterable, Iterator
from typing import Any

import gevent
import redis
from gevent.socket import wait_read
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..greenlets import Background
from .base import (
    CLAIM_SCAN,
    DISPATCHING,
    IN_FLIGHT,
    OWNED,
    PENDING,
    QUEUED,
    RECORD_FIELDS,
    TERMINAL,
    ChangeWaiters,
    Claim,
    Delivery,
    IdempotencyConflict,
    NewEvent,
    QueueFull,
    RunEvent,
    RunRecord,
    RunStore,
    RunStoreUnavailable,
    check_changes,
    cursor_seq,
    dump_json,
    events_key,
    new_attempt,
    seq_cursor,
)

log = logging.getLogger(__name__)


def _lua_set(statuses: Collection[str]) -> str:
    return "{" + ", ".join(f"['{s}'] = true" for s in sorted(statuses)) + "}"


# Shared by every script: ARGV[1] is the key prefix, ARGV[2] the caller's clock,
# ARGV[3] the caller's token (its subscriber skips what it published itself).
_PRELUDE = f"""
local P = ARGV[1]
local NOW = ARGV[2]
local ORIGIN = ARGV[3]
local QUEUED = '{QUEUED}'
local QUEUE_KEY = '{ChangeWaiters.QUEUE}'
local OUTBOX_KEY = '{ChangeWaiters.OUTBOX}'
local IN_FLIGHT = {_lua_set(IN_FLIGHT)}
local TERMINAL = {_lua_set(TERMINAL)}
local OWNED = {_lua_set(OWNED)}
local SCAN = {CLAIM_SCAN}

local function dec(raw)
  if not raw or raw == 'null' then return nil end
  return cjson.decode(raw)
end

local function member(id, seq)
  return string.format('%020d', tonumber(seq)) .. ':' .. id
end

-- The fields the indexes depend on; numbers kept as the JSON text Python wrote.
local function state(key)
  local v = redis.call('HMGET', key, 'status', 'server', 'priority', 'seq', 'ended_at',
                       'not_before')
  if not v[1] then return nil end
  return {{status = cjson.decode(v[1]), server = dec(v[2]), priority = v[3], seq = v[4],
          ended_at = v[5], not_before = v[6]}}
end

local function unindex(id, s)
  redis.call('ZREM', P .. 'status:' .. s.status, id)
  if s.status == QUEUED then
    local m = member(id, s.seq)
    redis.call('ZREM', P .. 'queued', m)
    redis.call('ZREM', P .. 'ready', m)
    redis.call('ZREM', P .. 'delayed', m)
  end
  if IN_FLIGHT[s.status] and s.server then
    redis.call('SREM', P .. 'inflight:' .. s.server, id)
  end
  if TERMINAL[s.status] then redis.call('ZREM', P .. 'ended', id) end
end

local function index(id, s)
  redis.call('ZADD', P .. 'status:' .. s.status, s.seq, id)
  if s.status == QUEUED then
    local m = member(id, s.seq)
    local score = -tonumber(s.priority)
    redis.call('ZADD', P .. 'queued', score, m)
    if tonumber(s.not_before) > tonumber(NOW) then
      redis.call('ZADD', P .. 'delayed', s.not_before, m)
    else
      redis.call('ZADD', P .. 'ready', score, m)
    end
  end
  if IN_FLIGHT[s.status] and s.server then
    redis.call('SADD', P .. 'inflight:' .. s.server, id)
  end
  if TERMINAL[s.status] and s.ended_at and s.ended_at ~= 'null' then
    redis.call('ZADD', P .. 'ended', s.ended_at, id)
  end
end

local function reindex(id, old, new)
  if old and old.status == new.status and old.server == new.server
      and old.priority == new.priority and old.ended_at == new.ended_at
      and old.not_before == new.not_before then
    return
  end
  if old then unindex(id, old) end
  index(id, new)
end

-- base.wakes_queue, for the statuses of one change.
local function wakes(old, new)
  return new == QUEUED or (old ~= nil and IN_FLIGHT[old] ~= nil and not IN_FLIGHT[new])
end

-- RPUSH ARGV[first..last] (event documents) to a run's events, in chunks: unpack()
-- is bounded by Lua's stack.
local function push_events(id, first, last)
  for i = first, last, 1000 do
    redis.call('RPUSH', P .. 'events:' .. id, unpack(ARGV, i, math.min(i + 999, last)))
  end
end

-- Store a delivery from the 5 arguments from ARGV[i]: id, run id, created_at,
-- next_at ('' unless pending), the document.
local function save_delivery(i)
  local id, run_id, next_at = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  redis.call('HSET', P .. 'deliveries', id, ARGV[i + 4])
  redis.call('ZADD', P .. 'deliveries:' .. run_id, ARGV[i + 2], id)
  if next_at ~= '' then
    redis.call('ZADD', P .. 'outbox', next_at, id)
  else
    redis.call('ZREM', P .. 'outbox', id)
  end
  return next_at ~= ''
end

-- Tell every process; the keys also go back to the caller, who wakes its own waiters.
local function publish(keys)
  if #keys > 0 then
    redis.call('PUBLISH', P .. 'changes', ORIGIN .. '\\n' .. table.concat(keys, '\\n'))
  end
  return keys
end
"""

# ARGV: prefix, now, origin, id, max_queued, idempotency key ('' for none), body_hash
# (JSON), the run's events key, n, then n event documents, then field/value pairs of
# the record without seq.
_CREATE = (
    _PRELUDE
    + """
local id, max_queued, idem, body_hash = ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
local events_key, n = ARGV[8], tonumber(ARGV[9])
local first = 10 + n
local key = P .. 'run:' .. id
if idem ~= '' then
  local existing = redis.call('HGET', P .. 'idem', idem)
  if existing then
    local ekey = P .. 'run:' .. existing
    local hash = redis.call('HGET', ekey, 'body_hash')
    if hash then
      if hash ~= body_hash then return {'conflict'} end
      return {'existing', redis.call('HGETALL', ekey)}
    end
    redis.call('HDEL', P .. 'idem', idem)
  end
end
local f = {}
for i = first, #ARGV, 2 do f[ARGV[i]] = ARGV[i + 1] end
local status = cjson.decode(f.status)
if status == QUEUED and max_queued > 0 and redis.call('ZCARD', P .. 'queued') >= max_queued then
  return {'full'}
end
if redis.call('EXISTS', key) == 1 then return {'exists'} end
local seq = tostring(redis.call('INCR', P .. 'seq'))
redis.call('HSET', key, 'seq', seq, unpack(ARGV, first))
redis.call('ZADD', P .. 'all', seq, id)
if idem ~= '' then redis.call('HSET', P .. 'idem', idem, id) end
index(id, {status = status, server = dec(f.server), priority = f.priority, seq = seq,
           ended_at = f.ended_at, not_before = f.not_before})
local keys = {id}
if wakes(nil, status) then table.insert(keys, QUEUE_KEY) end
if n > 0 then
  push_events(id, 10, first - 1)
  table.insert(keys, events_key)
end
return {'new', redis.call('HGETALL', key), publish(keys)}
"""
)

# ARGV: prefix, now, origin, id, expected statuses ('*': any; else comma-separated),
# the run's events key, n events, m deliveries, then n event documents, then m
# deliveries of 5 arguments each (see save_delivery), then field/value pairs
# (updated_at included).
_UPDATE = (
    _PRELUDE
    + """
local id, events_key, n, m = ARGV[4], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local first = 9 + n + 5 * m
local key = P .. 'run:' .. id
local old = state(key)
if not old then return false end
if ARGV[5] ~= '*' then
  local ok = false
  for s in string.gmatch(ARGV[5], '[^,]+') do
    if s == old.status then ok = true end
  end
  if not ok then return false end
end
redis.call('HSET', key, unpack(ARGV, first))
local new = state(key)
reindex(id, old, new)
local keys = {id}
if wakes(old.status, new.status) then table.insert(keys, QUEUE_KEY) end
if n > 0 then
  push_events(id, 9, 8 + n)
  table.insert(keys, events_key)
end
local pending = false
for i = 9 + n, first - 1, 5 do
  if save_delivery(i) then pending = true end
end
if pending then table.insert(keys, OUTBOX_KEY) end
return {publish(keys), redis.call('HGETALL', key)}
"""
)

# ARGV: prefix, now, origin, then per run: its id, its events key, n, n event documents.
# Events of a run without its hash (pruned) are dropped.
_APPEND = (
    _PRELUDE
    + """
local keys = {}
local i = 4
while i <= #ARGV do
  local id, n = ARGV[i], tonumber(ARGV[i + 2])
  if n > 0 and redis.call('EXISTS', P .. 'run:' .. id) == 1 then
    push_events(id, i + 3, i + 2 + n)
    table.insert(keys, ARGV[i + 1])
  end
  i = i + 3 + n
end
return publish(keys)
"""
)

# ARGV: prefix, now, origin, then the 5 arguments of save_delivery. A delivery of a
# run that is gone (pruned) is dropped: nothing would ever delete its keys.
_SAVE_DELIVERY = (
    _PRELUDE
    + """
if redis.call('EXISTS', P .. 'run:' .. ARGV[5]) == 0 then return {} end
if save_delivery(4) then return publish({OUTBOX_KEY}) end
return {}
"""
)

# ARGV: prefix, now, origin, due by, leased until, limit. Moves the outbox scores (the
# pending deliveries' next_at) of the due ones; returns their documents, soonest first.
_DUE = (
    _PRELUDE
    + """
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'outbox', '-inf', ARGV[4],
                               'LIMIT', 0, ARGV[6])) do
  local doc = redis.call('HGET', P .. 'deliveries', id)
  if doc then
    redis.call('ZADD', P .. 'outbox', ARGV[5], id)
    table.insert(out, doc)
  else
    redis.call('ZREM', P .. 'outbox', id)  -- never expected: an entry without its document
  end
end
return out
"""
)

# ARGV: prefix, now, origin, run id. Returns [document, outbox score or ''] of each of
# the run's deliveries, oldest first: read together, so a lease is never half seen.
_DELIVERIES = (
    _PRELUDE
    + """
local out = {}
for _, id in ipairs(redis.call('ZRANGE', P .. 'deliveries:' .. ARGV[4], 0, -1)) do
  local doc = redis.call('HGET', P .. 'deliveries', id)
  if doc then
    table.insert(out, {doc, redis.call('ZSCORE', P .. 'outbox', id) or ''})
  end
end
return out
"""
)

# ARGV: prefix, now, origin, server, limit, the attempt (JSON), then field/value pairs
# (status, server, owner, prompt_id, client_id, updated_at).
_CLAIM = (
    _PRELUDE
    + """
local server, limit, attempt = ARGV[4], tonumber(ARGV[5]), ARGV[6]
local tags = {}
for _, tag in ipairs(cjson.decode(ARGV[7])) do tags[tag] = true end
if limit > 0 and redis.call('SCARD', P .. 'inflight:' .. server) >= limit then
  return false
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', NOW)) do
  redis.call('ZADD', P .. 'ready', redis.call('ZSCORE', P .. 'queued', m), m)
  redis.call('ZREM', P .. 'delayed', m)
end
-- A run's route (a JSON object Python wrote, strings only) may keep it for
-- another server: look past it, as far as CLAIM_SCAN.
local function admits(raw)
  local route = dec(raw)
  if not route then return true end
  if route.server and route.server ~= cjson.null and route.server ~= server then
    return false
  end
  if type(route.tags) == 'table' then
    for _, tag in ipairs(route.tags) do
      if not tags[tag] then return false end
    end
  end
  return true
end
for _, head in ipairs(redis.call('ZRANGE', P .. 'ready', 0, SCAN - 1)) do
  local id = string.sub(head, 22)
  local key = P .. 'run:' .. id
  local old = state(key)
  if old and old.status == QUEUED then
    if admits(redis.call('HGET', key, 'route')) then
      local attempts = redis.call('HGET', key, 'attempts')
      if not attempts or attempts == '[]' then
        attempts = '[' .. attempt .. ']'
      else
        attempts = string.sub(attempts, 1, -2) .. ',' .. attempt .. ']'
      end
      redis.call('HSET', key, 'attempts', attempts, unpack(ARGV, 8))
      local new = state(key)
      reindex(id, old, new)
      return {publish({id}), redis.call('HGETALL', key)}
    end
  else
    -- An index entry without its queued run (never expected): drop it.
    redis.call('ZREM', P .. 'ready', head)
    redis.call('ZREM', P .. 'queued', head)
  end
end
return false
"""
)

# ARGV: prefix, now, origin, id.
_POSITION = (
    _PRELUDE
    + """
local id = ARGV[4]
local v = redis.call('HMGET', P .. 'run:' .. id, 'status', 'seq')
if not v[1] or cjson.decode(v[1]) ~= QUEUED then return false end
return redis.call('ZRANK', P .. 'queued', member(id, v[2]))
"""
)

# ARGV: prefix, now, origin, the adopting owner, it as JSON, updated_at (JSON).
_ADOPT = (
    _PRELUDE
    + """
local adopter, adopter_json, updated_at = ARGV[4], ARGV[5], ARGV[6]
local out, changed = {}, {}
for status, _ in pairs(OWNED) do
  for _, id in ipairs(redis.call('ZRANGE', P .. 'status:' .. status, 0, -1)) do
    local key = P .. 'run:' .. id
    local owner = dec(redis.call('HGET', key, 'owner'))
    if owner ~= adopter and (owner == nil or redis.call('EXISTS', P .. 'owner:' .. owner) == 0) then
      redis.call('HSET', key, 'owner', adopter_json, 'updated_at', updated_at)
      table.insert(changed, id)
      table.insert(out, redis.call('HGETALL', key))
    end
  end
end
return {publish(changed), out}
"""
)

# ARGV: prefix, now, origin, ended_before, batch size. Deletes the runs with their
# events and deliveries; returns how many runs it deleted.
_PRUNE = (
    _PRELUDE
    + """
local ids = redis.call('ZRANGEBYSCORE', P .. 'ended', '-inf', '(' .. ARGV[4], 'LIMIT', 0, ARGV[5])
for _, id in ipairs(ids) do
  local key = P .. 'run:' .. id
  local s = state(key)
  if s then
    unindex(id, s)
    local idem = dec(redis.call('HGET', key, 'idempotency_key'))
    if idem and redis.call('HGET', P .. 'idem', idem) == id then
      redis.call('HDEL', P .. 'idem', idem)
    end
    redis.call('ZREM', P .. 'all', id)
    redis.call('DEL', key)
  end
  redis.call('DEL', P .. 'events:' .. id)
  local dkey = P .. 'deliveries:' .. id
  for _, did in ipairs(redis.call('ZRANGE', dkey, 0, -1)) do
    redis.call('HDEL', P .. 'deliveries', did)
    redis.call('ZREM', P .. 'outbox', did)
  end
  redis.call('DEL', dkey)
  redis.call('ZREM', P .. 'ended', id)
end
return #ids
"""
)
_PRUNE_BATCH = 500


def _pairs(values: dict[str, Any]) -> list[str]:
    """Field/value arguments for HSET: each value JSON-encoded."""
    out: list[str] = []
    for name, value in values.items():
        out += (name, dump_json(value))
    return out


def _event_docs(events: list[NewEvent], at: float) -> list[str]:
    """Event documents encoded here: cjson would round `at` and the data's floats."""
    return [RunEvent(0, kind, data, at).to_json() for kind, data in events]


def _delivery_args(delivery: Delivery) -> list[str]:
    """The 5 arguments of the scripts' save_delivery; next_at only when pending."""
    pending = delivery.state == PENDING
    return [
        delivery.id,
        delivery.run_id,
        repr(float(delivery.created_at)),
        repr(float(delivery.next_at)) if pending else "",
        delivery.to_json(),
    ]


def _record(fields: dict[str, str] | list[str]) -> RunRecord:
    """A record from a hash, or from a script's flat [field, value, ...] reply.

    Unknown fields (written by a newer version) are ignored.
    """
    if isinstance(fields, list):
        it = iter(fields)
        fields = dict(zip(it, it, strict=True))
    return RunRecord(**{k: json.loads(v) for k, v in fields.items() if k in RECORD_FIELDS})


def _now() -> float:
    return time.time()


class RedisRunStore(RunStore):
    """Runs in Redis, shared by every worker of every gateway instance."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "comfysync:",
        socket_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        max_connections: int = 32,
    ) -> None:
        super().__init__()
        self.prefix = prefix
        self._channel = prefix + "changes"
        # No automatic retries: a script whose reply was lost may have run, and
        # running a create or a claim twice is worse than one failed call. A
        # bounded pool: thousands of greenlets share `max_connections` sockets,
        # waiting (cooperatively, under gevent) up to `socket_timeout` for one.
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout,
            decode_responses=True,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=30,
        )
        self._client = redis.Redis(connection_pool=pool)
        self._create = self._client.register_script(_CREATE)
        self._update = self._client.register_script(_UPDATE)
        self._claim = self._client.register_script(_CLAIM)
        self._position = self._client.register_script(_POSITION)
        self._adopt = self._client.register_script(_ADOPT)
        self._prune = self._client.register_script(_PRUNE)
        self._append = self._client.register_script(_APPEND)
        self._save_delivery = self._client.register_script(_SAVE_DELIVERY)
        self._due = self._client.register_script(_DUE)
        self._deliveries = self._client.register_script(_DELIVERIES)
        self._listen_pid = 0
        self._origin = ""  # this process's token in published messages
        self._background: Background | None = None
        self._pubsub: Any = None
        self._closed = False

    # -- plumbing --------------------------------------------------------------------------

    def _call(self, script: Any, *args: Any) -> Any:
        """Run one script, subscribed first so this process hears what follows.

        :raises RunStoreUnavailable: Redis cannot be reached or did not answer in time.
        """
        self._listen()
        try:
            return script(keys=[], args=[self.prefix, repr(_now()), self._origin, *args])
        except (redis.ConnectionError, redis.TimeoutError) as err:
            raise RunStoreUnavailable(f"Redis: {err}") from err

    def _cmd(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self._listen()
        try:
            return getattr(self._client, name)(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as err:
            raise RunStoreUnavailable(f"Redis: {err}") from err

    def _changed(self, reply: Any) -> RunRecord | None:
        """The record a script changed, after waking this process's waiters for it."""
        if not reply:
            return None
        keys, fields = reply
        self.waiters.notify(keys)
        return _record(fields)

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- wake-ups ------------------------------------------------------------------------

    def _listen(self) -> None:
        """Start this process's subscriber once (again after a fork), before any change."""
        pid = os.getpid()
        if self._listen_pid == pid or self._closed:
            return
        if self._background is not None:  # the parent's, copied by fork: not ours to read
            self._background.group.kill(block=False)
        self._listen_pid = pid
        self._origin = secrets.token_hex(8)
        self._background = Background("runs-redis")
        try:
            self._pubsub = self._subscribe()
        except (redis.ConnectionError, redis.TimeoutError) as err:
            self._listen_pid = 0
            raise RunStoreUnavailable(f"Redis: {err}") from err
        self._background.spawn(self._read_changes, name="changes")

    def _subscribe(self) -> Any:
        """A pub/sub connection subscribed to the channel, confirmed: nothing after is missed."""
        pubsub = self._client.pubsub()
        pubsub.subscribe(self._channel)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for message in self._messages(pubsub, wait=deadline - time.monotonic()):
                if message["type"] == "subscribe":
                    return pubsub
        pubsub.close()
        raise redis.TimeoutError("no subscription confirmation from Redis")

    def _messages(self, pubsub: Any, wait: float) -> Iterator[dict[str, Any]]:
        """Messages already received, after waiting up to `wait` s for one, cooperatively.

        The socket is waited on through gevent, so even an unpatched process
        (tests, scripts) keeps its other greenlets running meanwhile.
        """
        message = pubsub.get_message(timeout=0.0)
        if message is None:
            with gevent.Timeout(max(0.0, wait), False):
                wait_read(pubsub.connection._sock.fileno())
            message = pubsub.get_message(timeout=0.0)
        while message is not None:
            yield message
            message = pubsub.get_message(timeout=0.0)

    def _read_changes(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                if self._pubsub is None:
                    self._pubsub = self._subscribe()
                    # Changes published while we were away went unheard.
                    self.waiters.notify_all()
                for message in self._messages(self._pubsub, wait=30):
                    if message["type"] == "message":
                        origin, *keys = message["data"].split("\n")
                        if origin != self._origin:
                            self.waiters.notify(keys)
                delay = 0.1
            except (redis.ConnectionError, redis.TimeoutError, OSError) as err:
                if self._closed:
                    return
                log.warning("run store: Redis subscription lost (%s); reconnecting", err)
                if self._pubsub is not None:
                    with contextlib.suppress(redis.RedisError, OSError):
                        self._pubsub.close()
                    self._pubsub = None
                gevent.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- records -------------------------------------------------------------------------

    def create(
        self,
        record: RunRecord,
        *,
        max_queued: int = 0,
        claim: Claim | None = None,
        events: Iterable[NewEvent] = (),
    ) -> tuple[RunRecord, bool]:
        # `claim` is not taken up: the run is queued and claimed by a dispatcher.
        fields = {k: v for k, v in vars(record).items() if k != "seq"}
        docs = _event_docs(list(events), record.created_at)
        reply = self._call(
            self._create,
            record.id,
            max_queued,
            record.idempotency_key or "",
            dump_json(record.body_hash),
            events_key(record.id),
            len(docs),
            *docs,
            *_pairs(fields),
        )
        outcome = reply[0]
        if outcome == "conflict":
            raise IdempotencyConflict()
        if outcome == "full":
            raise QueueFull()
        if outcome == "exists":
            raise ValueError(f"run {record.id} exists already")
        if outcome == "new":
            self.waiters.notify(reply[2])
        return _record(reply[1]), outcome == "new"

    def get(self, run_id: str) -> RunRecord | None:
        fields = self._cmd("hgetall", self._key("run", run_id))
        return _record(fields) if fields else None

    def update(
        self,
        run_id: str,
        *,
        expect: Collection[str] | None = None,
        events: Iterable[NewEvent] = (),
        deliveries: Iterable[Delivery] = (),
        **changes: Any,
    ) -> RunRecord | None:
        check_changes(changes)
        changes["updated_at"] = now = _now()
        docs = _event_docs(list(events), now)
        outbox = [arg for delivery in deliveries for arg in _delivery_args(delivery)]
        reply = self._call(
            self._update,
            run_id,
            "*" if expect is None else ",".join(expect),
            events_key(run_id),
            len(docs),
            len(outbox) // 5,
            *docs,
            *outbox,
            *_pairs(changes),
        )
        return self._changed(reply)

    # -- events ----------------------------------------------------------------------------

    def append_events(self, events: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        now = _now()
        by_run: dict[str, list[NewEvent]] = {}
        for run_id, kind, data in events:
            by_run.setdefault(run_id, []).append((kind, data))
        if not by_run:
            return
        args: list[Any] = []
        for run_id, batch in by_run.items():
            args += (run_id, events_key(run_id), len(batch), *_event_docs(batch, now))
        self.waiters.notify(self._call(self._append, *args))

    def events(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[RunEvent]:
        after = max(0, after)
        docs = self._cmd("lrange", self._key("events", run_id), after, after + max(1, limit) - 1)
        return [RunEvent.from_json(after + i, doc) for i, doc in enumerate(docs, 1)]

    def last_event(self, run_id: str) -> RunEvent | None:
        # One transaction: an event appended between the two reads would shift the seq.
        pipe = self._client.pipeline(transaction=True)
        pipe.llen(self._key("events", run_id))
        pipe.lindex(self._key("events", run_id), -1)
        try:
            count, doc = pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as err:
            raise RunStoreUnavailable(f"Redis: {err}") from err
        return None if doc is None else RunEvent.from_json(int(count), doc)

    # -- the webhook outbox -------------------------------------------------------------------

    def due_deliveries(self, now: float, *, lease: float, limit: int) -> list[Delivery]:
        until = now + lease
        docs = self._call(self._due, repr(float(now)), repr(float(until)), max(1, limit))
        taken = [Delivery.from_json(doc) for doc in docs]
        for delivery in taken:
            delivery.next_at = until  # the script moved the outbox score, not the document
        return taken

    def save_delivery(self, delivery: Delivery) -> None:
        self.waiters.notify(self._call(self._save_delivery, *_delivery_args(delivery)))

    def deliveries(self, run_id: str) -> list[Delivery]:
        found = []
        for doc, score in self._call(self._deliveries, run_id):
            delivery = Delivery.from_json(doc)
            if score != "":  # pending: the outbox score is its next_at (see the module doc)
                delivery.next_at = float(score)
            found.append(delivery)
        return found

    def next_delivery_at(self) -> float | None:
        head = self._cmd("zrange", self._key("outbox"), 0, 0, withscores=True)
        return float(head[0][1]) if head else None

    # -- the queue -------------------------------------------------------------------------

    def claim(
        self,
        server: str,
        owner: str,
        *,
        limit: int,
        prompt_id: str,
        client_id: str,
        tags: Collection[str] = (),
    ) -> RunRecord | None:
        now = _now()
        changes = {
            "status": DISPATCHING,
            "server": server,
            "owner": owner,
            "prompt_id": prompt_id,
            "client_id": client_id,
            "updated_at": now,
        }
        reply = self._call(
            self._claim,
            server,
            max(0, limit),
            dump_json(new_attempt(prompt_id, server, now)),
            dump_json(sorted(tags)),
            *_pairs(changes),
        )
        return self._changed(reply)

    def any_ready(self) -> bool:
        pipe = self._client.pipeline(transaction=False)
        pipe.zcard(self._key("ready"))
        pipe.zcount(self._key("delayed"), "-inf", _now())
        try:
            ready, due = pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as err:
            raise RunStoreUnavailable(f"Redis: {err}") from err
        return bool(ready or due)

    def oldest_queued(self, limit: int) -> list[RunRecord]:
        ids = self._cmd("zrange", self._key("status", QUEUED), 0, max(0, limit - 1))
        return [r for r in self._records(ids) if r.status == QUEUED]

    def _records(self, run_ids: Iterable[str]) -> list[RunRecord]:
        """The runs of these ids, in one round trip; a run pruned meanwhile is left out."""
        pipe = self._client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hgetall(self._key("run", run_id))
        try:
            replies = pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as err:
            raise RunStoreUnavailable(f"Redis: {err}") from err
        return [_record(fields) for fields in replies if fields]

    def queue_position(self, run_id: str) -> int | None:
        reply = self._call(self._position, run_id)
        return None if reply is None else int(reply)

    def queued_count(self) -> int:
        return int(self._cmd("zcard", self._key("queued")))

    def in_flight(self, server: str) -> int:
        return int(self._cmd("scard", self._key("inflight", server)))

    def list_runs(
        self, *, status: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[RunRecord], str | None]:
        limit = max(1, limit)
        index = self._key("status", status) if status is not None else self._key("all")
        top = f"({cursor_seq(cursor)}" if cursor is not None else "+inf"
        found = self._cmd(
            "zrevrangebyscore", index, top, "-inf", start=0, num=limit + 1, withscores=True
        )
        page = found[:limit]
        runs = self._records(run_id for run_id, _ in page)
        more = len(found) > limit
        return runs, (seq_cursor(int(page[-1][1])) if more else None)

    # -- owners and recovery -------------------------------------------------------------

    def heartbeat(self, owner: str, ttl: float) -> None:
        self._cmd("set", self._key("owner", owner), "1", px=max(1, int(ttl * 1000)))

    def adopt(self, owner: str) -> list[RunRecord]:
        keys, runs = self._call(self._adopt, owner, dump_json(owner), dump_json(_now()))
        self.waiters.notify(keys)
        return [_record(flat) for flat in runs]

    def prune(self, ended_before: float) -> int:
        deleted = 0
        while True:
            count = int(self._call(self._prune, repr(float(ended_before)), _PRUNE_BATCH))
            deleted += count
            if count < _PRUNE_BATCH:
                return deleted
            gevent.sleep(0)

    def close(self) -> None:
        """Stop the subscriber and close every connection of this process."""
        if self._closed:
            return
        self._closed = True
        if self._background is not None:
            if self._listen_pid == os.getpid():
                self._background.kill()
            else:
                self._background.group.kill(block=False)
        if self._pubsub is not None and self._listen_pid == os.getpid():
            self._pubsub.close()
        self._client.close()
