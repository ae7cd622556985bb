"""Appending a process's run events to the store in batches.

A frame's event is not worth a transaction of its own: a quick run makes
four to six of them within a few milliseconds. Events wait here up to
`window` seconds and go to the store together, in one transaction for every
run of this process; a run's last events go in the transaction that records
its end (`take`), so an ended run has all its events, the final one last.
Progress of one node that is replaced within a window is written once, with
its latest value: a sampler's steps are rate-limited that way.
"""

from __future__ import annotations

import logging

import gevent
from gevent.event import Event

from ..errors import GatewayError
from ..greenlets import Background
from ..runs.base import NewEvent, RunStore

log = logging.getLogger(__name__)

# Long enough to batch a burst of frames, short against the SSE latency target (50 ms).
WINDOW = 0.01


class EventWriter:
    """Pending events of this process's runs, flushed every `window` seconds."""

    def __init__(self, store: RunStore, window: float = WINDOW) -> None:
        self.store = store
        self.window = window
        self.pending: dict[str, list[NewEvent]] = {}
        self.background = Background("events")
        self._scheduled: gevent.Greenlet | None = None
        self._flushed: Event | None = None  # set when the flush under way is done

    def emit(self, run_id: str, events: list[NewEvent]) -> None:
        """Queue events of a run for the next flush."""
        if not events:
            return
        queue = self.pending.setdefault(run_id, [])
        for event in events:
            if queue and event[0] == "progress" and queue[-1][0] == "progress":
                if queue[-1][1].get("node") == event[1].get("node"):
                    queue[-1] = event  # the same node's newer progress: only the latest
                    continue
            queue.append(event)
        if self._scheduled is None:
            self._scheduled = self.background.spawn_later(self.window, self.flush, name="flush")

    def take(self, run_id: str) -> list[NewEvent]:
        """The run's pending events, for the caller to write with the run's change.

        Waits for a flush under way first, so events written by it come
        before those the caller writes.
        """
        flushed = self._flushed
        if flushed is not None:
            flushed.wait(timeout=10)
        return self.pending.pop(run_id, [])

    def flush(self) -> None:
        """Write every pending event now, in one transaction."""
        self._scheduled = None
        if not self.pending:
            return
        batch, self.pending = self.pending, {}
        flushed = self._flushed = Event()
        try:
            self.store.append_events(
                (run_id, kind, data) for run_id, events in batch.items() for kind, data in events
            )
        except GatewayError as err:
            # Events are what clients watch, never the truth of a run: lost, not fatal.
            log.warning("could not record %d runs' events: %s", len(batch), err)
        finally:
            self._flushed = None
            flushed.set()

    def close(self) -> None:
        """Write what is pending and stop."""
        if self._scheduled is not None:
            self._scheduled.kill(block=False)
        self.flush()
        self.background.kill()
