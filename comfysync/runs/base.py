"""The run record and the run store interface: every generation, durably.

A run is one accepted generation, from the moment the gateway says yes until
its outputs are stored (or it failed or was cancelled). The store is the
truth every worker and instance shares: the gateway's queue, who dispatched
what to which ComfyUI server, and the answer a client fetches later.

Backends (`sqlite`, `redis`) implement `RunStore`; `factory.build_run_store`
picks one. They all pass the contract suite in `tests/runs/`.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

import orjson
from gevent.event import Event

from ..errors import BadRequest, GatewayError
from ..numbers import parse_whole

# -- statuses --------------------------------------------------------------

QUEUED = "queued"  # waiting in the gateway's queue
DISPATCHING = "dispatching"  # claimed, prompt id chosen; POST /prompt may be on its way
SUBMITTED = "submitted"  # ComfyUI accepted it and holds it in its queue
RUNNING = "running"  # ComfyUI is executing it
UPLOADING = "uploading"  # ComfyUI is done; outputs are being copied and stored
SUCCESS = "success"
FAILED = "failed"
CANCELLED = "cancelled"

# Runs that hold one of a server's in-flight places (COMFYUI_MAX_INFLIGHT).
IN_FLIGHT = frozenset({DISPATCHING, SUBMITTED, RUNNING})
# Runs whose owner must be alive: somebody is watching or storing them.
OWNED = frozenset({DISPATCHING, SUBMITTED, RUNNING, UPLOADING})
TERMINAL = frozenset({SUCCESS, FAILED, CANCELLED})
STATUSES = (QUEUED, DISPATCHING, SUBMITTED, RUNNING, UPLOADING, SUCCESS, FAILED, CANCELLED)


class IdempotencyConflict(GatewayError):
    """An `Idempotency-Key` was reused with a different request body."""

    code = 409
    error_type = "idempotency_conflict"
    description = "This Idempotency-Key was already used with a different request body"


class QueueFull(GatewayError):
    """MAX_QUEUED_RUNS runs already wait in the gateway's queue."""

    code = 429
    error_type = "queue_full"
    description = "Too many runs are waiting; retry later"


class RunStoreUnavailable(GatewayError):
    """The run store cannot be reached (Redis) or stayed locked too long (SQLite)."""

    code = 503
    error_type = "run_store_unavailable"
    description = "The run store is unavailable; retry later"


# Records are plain JSON trees; the cycle check is skipped in the fallback too.
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def dump_json(value: Any) -> str:
    """Compact JSON of a record or one of its fields, as the stores keep it.

    orjson: a record's encoding took 40 µs of each store write with `json`,
    the largest single cost of a write (profiled under load); orjson takes a
    tenth of that. Bodies are read with `json` and refuse NaN, so the one
    value orjson would write differently (NaN as null) never gets here;
    integers past 64 bits, which orjson refuses, go through `json`. Reading
    stays with `json`: orjson reads such integers as floats.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return _ENCODER.encode(value)


@dataclass
class RunRecord:
    """One run, as the store keeps it. Times are epoch seconds (UTC)."""

    id: str
    status: str = QUEUED
    mode: str = "async"  # "sync": a request holds it open; "async": nobody waits
    request: dict[str, Any] = field(default_factory=dict)  # the body as the client sent it
    graph: dict[str, Any] | None = None  # built and ready to submit
    priority: int = 0  # higher first; FIFO within one priority
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None  # ComfyUI began executing
    ended_at: float | None = None
    not_before: float = 0.0  # a retried run waits in the queue until then
    server: str | None = None  # the ComfyUI server of the latest attempt
    prompt_id: str | None = None  # ComfyUI's prompt id of the latest attempt
    client_id: str | None = None  # the WebSocket client id that submitted it
    owner: str | None = None  # the process that dispatched it and watches it
    attempts: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None  # the sync answer body, once stored
    files: list[dict[str, Any]] = field(default_factory=list)  # local copies, once made
    error: dict[str, Any] | None = None  # the error body, when failed or cancelled
    progress: dict[str, Any] = field(default_factory=dict)  # {current, total, message}
    idempotency_key: str | None = None
    body_hash: str | None = None
    key_name: str | None = None  # the API key that started it
    # Where it may run: {"server": name} pins it, {"tags": [...]} needs servers
    # with every tag; None: any server.
    route: dict[str, Any] | None = None
    # Input images sent to ComfyUI when the run was accepted, and to which
    # server: dispatched elsewhere, they are copied there first.
    uploads: list[str] = field(default_factory=list)
    uploads_on: str | None = None
    cancel_requested: bool = False
    seq: int = 0  # insertion order, assigned by the store

    @classmethod
    def new(cls, request: dict[str, Any], **values: Any) -> RunRecord:
        """A fresh queued run with a new id, stamped now."""
        now = time.time()
        values.setdefault("created_at", now)
        values.setdefault("updated_at", now)
        return cls(id=str(uuid.uuid4()), request=request, **values)

    def evolve(self, **changes: Any) -> RunRecord:
        """A shallow copy with `changes`, whose names the caller has checked.

        `dataclasses.replace` re-runs `__init__` over every field: 14 µs a
        copy, three copies per generation's life in the store; this is 1 µs.
        """
        new = object.__new__(RunRecord)
        new.__dict__.update(self.__dict__, **changes)
        return new

    @property
    def finished(self) -> bool:
        """Whether the run has reached success, failed or cancelled."""
        return self.status in TERMINAL

    def to_json(self) -> str:
        """The record as one JSON document (how backends store it)."""
        # vars(), not asdict(): asdict deep-copies the request and the graph
        # first, three quarters of a SQLite write's time (profiled, 1.5 kB record).
        return dump_json(vars(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> RunRecord:
        """Read a record written by `to_json`; unknown keys (newer versions) are ignored."""
        data = json.loads(raw)
        if not data.keys() <= RECORD_FIELDS:
            data = {k: v for k, v in data.items() if k in RECORD_FIELDS}
        return cls(**data)


RECORD_FIELDS = frozenset(f.name for f in fields(RunRecord))
# Assigned once by `create` and by the store: `update` refuses to change them.
FIXED_FIELDS = frozenset({"id", "seq", "idempotency_key"})


def apply_changes(record: RunRecord, changes: dict[str, Any], now: float) -> RunRecord:
    """`record` with `changes` applied and `updated_at` stamped (the record is not modified).

    :raises ValueError: a change names an unknown field or one of FIXED_FIELDS.
    """
    check_changes(changes)
    return record.evolve(**changes, updated_at=now)


def check_changes(changes: dict[str, Any]) -> None:
    """Refuse changes `update` cannot make.

    :raises ValueError: a change names an unknown field or one of FIXED_FIELDS.
    """
    unknown = changes.keys() - RECORD_FIELDS
    if unknown:
        raise ValueError(f"unknown run field(s): {', '.join(sorted(unknown))}")
    fixed = changes.keys() & FIXED_FIELDS
    if fixed:
        raise ValueError(f"run field(s) set by the store only: {', '.join(sorted(fixed))}")


@dataclass(frozen=True)
class Claim:
    """Who would dispatch a new run at once, and where (see `RunStore.create`)."""

    server: str
    owner: str
    limit: int  # IN_FLIGHT runs `server` may have at most; 0: no limit
    prompt_id: str
    client_id: str


# A claim looks this far down the queue for a run its server may take (past
# runs pinned elsewhere); a queue headed by more such runs waits for them.
CLAIM_SCAN = 256


def admits(route: dict[str, Any] | None, server: str, tags: Collection[str]) -> bool:
    """Whether a run with this `route` may go to `server`, which has `tags`."""
    if not route:
        return True
    pinned = route.get("server")
    if pinned is not None and pinned != server:
        return False
    return all(tag in tags for tag in route.get("tags") or ())


@dataclass(frozen=True)
class RunEvent:
    """One thing that happened to a run, as the store keeps it.

    `seq` counts from 1 within the run, with no gaps: it is the SSE event id
    a client resumes after. `type` is one of the event names (`queued`,
    `started`, `progress`, `executed`, `uploading`, `retrying`, `succeeded`,
    `failed`, `cancelled`); `at` is epoch seconds.
    """

    seq: int
    type: str
    data: dict[str, Any]
    at: float

    def to_json(self) -> str:
        """The event as the stores keep it (without `seq`, which is its place)."""
        return dump_json({"type": self.type, "data": self.data, "at": self.at})

    @classmethod
    def from_json(cls, seq: int, raw: str | bytes) -> RunEvent:
        value = json.loads(raw)
        return cls(seq, value["type"], value["data"], value["at"])


# An event to append: (type, data); the store numbers and stamps it.
NewEvent = tuple[str, dict[str, Any]]
# Events after which a run has nothing more to say.
FINAL_EVENTS = frozenset({"succeeded", "failed", "cancelled"})

PENDING = "pending"
DELIVERED = "delivered"
GAVE_UP = "failed"


@dataclass
class Delivery:
    """One webhook message to one receiver: the outbox entry and its delivery state.

    `id` is the `webhook-id` of every attempt, so a receiver can tell a retry
    from a new message. `body` is the exact JSON that is signed and sent.
    """

    id: str
    run_id: str
    event: str  # run.succeeded, run.failed, ...
    url: str
    body: str
    created_at: float
    next_at: float  # when the next attempt is due (while pending)
    state: str = PENDING  # pending | delivered | failed (gave up)
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None

    def to_json(self) -> str:
        return dump_json(vars(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Delivery:
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in DELIVERY_FIELDS})


DELIVERY_FIELDS = frozenset(f.name for f in fields(Delivery))


def events_key(run_id: str) -> str:
    """The wake-up key of a run's events."""
    return run_id + ":events"


def new_attempt(prompt_id: str, server: str, at: float) -> dict[str, Any]:
    """The attempt `claim` appends to a run."""
    return {"prompt_id": prompt_id, "server": server, "at": at}


def seq_cursor(seq: int) -> str:
    """The `list_runs` cursor that continues after the run with this `seq`."""
    return str(seq)


def cursor_seq(cursor: str) -> int:
    """The `seq` a `list_runs` cursor continues after.

    :raises BadRequest: the cursor was not made by `seq_cursor`.
    """
    seq = parse_whole(cursor)
    if seq is None:
        raise BadRequest("Invalid cursor", cursor=cursor)
    return seq


def body_hash(body: Any) -> str:
    """A stable digest of a request body, to tell an idempotent retry from a new request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ChangeWaiters:
    """Greenlets of this process waiting for a run (or the queue) to change.

    Backends call `notify` for every change they make or hear of from other
    processes; `wait` blocks one greenlet until then, bounded by a timeout.
    """

    QUEUE = "*queue*"  # the key dispatchers wait on
    OUTBOX = "*outbox*"  # the key webhook senders wait on

    def __init__(self) -> None:
        self._events: dict[str, Event] = {}
        self._waiting: dict[str, int] = {}

    def wait(self, key: str, timeout: float) -> bool:
        """Block until `notify(key)` or `timeout` seconds; True when notified."""
        with self.armed(key) as event:
            return bool(event.wait(timeout=max(0.0, timeout)))

    @contextmanager
    def armed(self, key: str) -> Iterator[Event]:
        """An event the next `notify(key)` sets, from now on.

        Arm before reading what you then wait for: a change made while the
        read is under way (Redis reads yield to other greenlets) still wakes you.
        """
        event = self._events.setdefault(key, Event())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            yield event
        finally:
            left = self._waiting.pop(key) - 1
            if left:
                self._waiting[key] = left
            elif self._events.get(key) is event:
                del self._events[key]

    def notify(self, keys: Iterable[str]) -> None:
        """Wake every greenlet waiting for any of `keys`."""
        for key in keys:
            event = self._events.pop(key, None)
            if event is not None:
                event.set()

    def notify_all(self) -> None:
        """Wake every waiting greenlet (after changes may have been missed)."""
        self.notify(list(self._events))

    def __contains__(self, key: str) -> bool:
        return key in self._events


def wakes_queue(old_status: str | None, new_status: str) -> bool:
    """Whether a status change may let a dispatcher take a run (one queued, a place freed)."""
    if new_status == QUEUED:
        return True
    return old_status in IN_FLIGHT and new_status not in IN_FLIGHT


class RunStore(ABC):
    """Where runs live; shared by every worker (and, with Redis, every instance)."""

    name = "runs"

    def __init__(self) -> None:
        self.waiters = ChangeWaiters()

    # -- records -------------------------------------------------------------

    @abstractmethod
    def create(
        self,
        record: RunRecord,
        *,
        max_queued: int = 0,
        claim: Claim | None = None,
        events: Iterable[NewEvent] = (),
    ) -> tuple[RunRecord, bool]:
        """Insert `record` (assigning `seq`); returns (the stored run, whether it is new).

        `events` are appended to the new run in the same transaction (not to
        an existing run returned for its idempotency key).

        With an `idempotency_key` already in use and the same `body_hash`, the
        existing run comes back with False. A queued record is refused when
        `max_queued` (> 0) runs already wait.

        With `claim`, a store may insert the run claimed (as `claim` would
        leave it) when `claim.server` has room and no queued run would be
        claimed before it: one write instead of two for a run that need not
        wait. A store that does not comes back with the run queued.

        :raises IdempotencyConflict: the key was used with another body hash.
        :raises QueueFull: the queue holds `max_queued` runs already.
        """

    @abstractmethod
    def get(self, run_id: str) -> RunRecord | None:
        """The run, or None."""

    @abstractmethod
    def update(
        self,
        run_id: str,
        *,
        expect: Collection[str] | None = None,
        events: Iterable[NewEvent] = (),
        deliveries: Iterable[Delivery] = (),
        **changes: Any,
    ) -> RunRecord | None:
        """Change fields of a run atomically and return it, `updated_at` stamped.

        With `expect`, nothing changes (and None is returned) unless the run's
        current status is one of `expect`: the compare-and-set every state
        transition goes through. None also when the run does not exist.
        `events` and `deliveries` are added in the same transaction, only when
        the change is made: a run's end, its final event and its webhooks are
        recorded together or not at all.
        """

    # -- events -----------------------------------------------------------------

    @abstractmethod
    def append_events(self, events: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Append (run id, type, data) events, of any runs, in one transaction.

        Events of a run that does not exist (pruned) are dropped.
        """

    @abstractmethod
    def events(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[RunEvent]:
        """The run's events with `seq` > `after`, oldest first, at most `limit`."""

    @abstractmethod
    def last_event(self, run_id: str) -> RunEvent | None:
        """The run's newest event, or None."""

    def wait_for_events(self, run_id: str, timeout: float) -> bool:
        """Block until the run has new events (from any worker or instance) or `timeout`."""
        return self.waiters.wait(events_key(run_id), timeout)

    # -- the webhook outbox ----------------------------------------------------------

    @abstractmethod
    def due_deliveries(self, now: float, *, lease: float, limit: int) -> list[Delivery]:
        """Take up to `limit` pending deliveries due by `now`, soonest first.

        Each is leased: its `next_at` moves to `now + lease` in the store, so no
        other sender takes it meanwhile, and a sender that died mid-attempt
        leaves it due again once the lease is over.
        """

    @abstractmethod
    def save_delivery(self, delivery: Delivery) -> None:
        """Store a delivery's new state (after an attempt, or to send it again)."""

    @abstractmethod
    def deliveries(self, run_id: str) -> list[Delivery]:
        """The run's deliveries, oldest first."""

    @abstractmethod
    def next_delivery_at(self) -> float | None:
        """When the soonest pending delivery is due, or None when none is pending."""

    def wait_for_deliveries(self, timeout: float) -> bool:
        """Block until a delivery is added or made due again, or `timeout`."""
        return self.waiters.wait(ChangeWaiters.OUTBOX, timeout)

    # -- the queue ------------------------------------------------------------

    @abstractmethod
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
        """Take the next queued run for `server`, if it has room; atomically.

        Room means fewer than `limit` runs IN_FLIGHT on `server` (`limit` 0: no
        limit). The next run is the highest priority, oldest `seq`, whose
        `not_before` has passed and whose `route` admits `server` with `tags`
        (among the first CLAIM_SCAN). It becomes DISPATCHING with `server`,
        `owner`, `prompt_id` and `client_id` set and an attempt appended
        (`{"prompt_id", "server", "at"}`).
        """

    @abstractmethod
    def any_ready(self) -> bool:
        """Whether some queued run may be claimed now (its `not_before` passed).

        One cheap read: a dispatcher asks it before trying each server in turn.
        """

    @abstractmethod
    def oldest_queued(self, limit: int) -> list[RunRecord]:
        """The `limit` queued runs that were created first (for expiring them)."""

    @abstractmethod
    def queue_position(self, run_id: str) -> int | None:
        """How many queued runs are ahead of this one (0: next); None when it is not queued."""

    @abstractmethod
    def queued_count(self) -> int:
        """Runs waiting in the gateway's queue."""

    @abstractmethod
    def in_flight(self, server: str) -> int:
        """Runs IN_FLIGHT on `server`."""

    @abstractmethod
    def list_runs(
        self, *, status: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[RunRecord], str | None]:
        """Runs newest first (optionally of one status) and the cursor of the next page."""

    # -- owners and recovery ---------------------------------------------------

    @abstractmethod
    def heartbeat(self, owner: str, ttl: float) -> None:
        """Declare `owner` alive for `ttl` seconds more."""

    @abstractmethod
    def adopt(self, owner: str) -> list[RunRecord]:
        """Take over every OWNED run whose owner is not alive (no live heartbeat).

        Each such run gets `owner` atomically, so two adopters never share one.
        """

    @abstractmethod
    def prune(self, ended_before: float) -> int:
        """Delete finished runs that ended before the given time, with their events and
        deliveries; returns how many runs."""

    # -- wake-ups ---------------------------------------------------------------

    def wait_for_change(self, run_id: str, timeout: float) -> bool:
        """Block until the run changes (in any worker or instance) or `timeout`; True if it did."""
        return self.waiters.wait(run_id, timeout)

    def wait_for_work(self, timeout: float) -> bool:
        """Block until a run is queued or an in-flight place frees up, or `timeout`."""
        return self.waiters.wait(ChangeWaiters.QUEUE, timeout)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and background work."""
