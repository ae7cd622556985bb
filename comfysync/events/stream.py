"""A run's events as Server-Sent Events: replayed from the store, then live.

Each event goes out as `id: <seq>`, `event: <type>`, `data: <JSON>`; a client
that reconnects with `Last-Event-ID` gets what came after. The store is the
only source, so a stream attached to any worker (or instance) sees the
events of a run watched by any other; waits are armed before each read, so
an event appended meanwhile is never waited past.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..errors import BadRequest
from ..numbers import parse_whole
from ..runs.base import FINAL_EVENTS, RunEvent, RunRecord, RunStore, dump_json, events_key

# Browsers' EventSource waits this long (ms) before reconnecting after a drop.
RETRY_MS = 2000
_PAGE = 500

# How the run's end reads when its final event is missing (it ended before
# events were recorded): the record's status, as an event type.
_FINAL_OF_STATUS = {"success": "succeeded", "failed": "failed", "cancelled": "cancelled"}


def last_event_id(header: str | None, query: str | None) -> int:
    """Where a stream resumes: `Last-Event-ID` (or `?last_event_id=`), 0 from the start.

    :raises BadRequest: not a whole number.
    """
    raw = header if header is not None else query
    if raw is None or raw.strip() == "":
        return 0
    seq = parse_whole(raw.strip())
    if seq is None:
        raise BadRequest("'Last-Event-ID' must be a whole number (an event id)")
    return seq


def frame(event: RunEvent) -> bytes:
    """One event in the SSE wire format (JSON holds no raw newline, so one data line)."""
    return f"id: {event.seq}\nevent: {event.type}\ndata: {dump_json(event.data)}\n\n".encode()


def run_events(
    store: RunStore,
    run_id: str,
    *,
    after: int,
    heartbeat: float,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[bytes]:
    """The SSE body of a run's events after `after`, ending with its final event.

    A comment line goes out after every `heartbeat` seconds without an event.
    `stop()` true ends the stream early (the client left, the worker stops).
    """
    yield f"retry: {RETRY_MS}\n\n".encode()
    quiet = True  # nothing new since the last look at the record
    while not stop():
        with store.waiters.armed(events_key(run_id)) as changed:
            events = store.events(run_id, after=after, limit=_PAGE)
            for event in events:
                yield frame(event)
                after = event.seq
                if event.type in FINAL_EVENTS:
                    return
            if events:
                quiet = False
                continue
            if quiet:
                record = store.get(run_id)
                if record is None:
                    return
                if record.finished:
                    if store.events(run_id, after=after, limit=1):
                        continue  # it ended since the read above: its final event is there
                    yield frame(_final_from_record(record, after + 1))
                    return
            woke = changed.wait(timeout=heartbeat)
        quiet = not woke
        if not woke:
            yield b": keep-alive\n\n"


def _final_from_record(record: RunRecord, seq: int) -> RunEvent:
    kind = _FINAL_OF_STATUS.get(record.status, "failed")
    data = (record.result or {}) if kind == "succeeded" else (record.error or {})
    return RunEvent(seq, kind, data, record.ended_at or record.updated_at)
