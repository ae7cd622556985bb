"""Holding a sync request open until its run ends, or until its wait budget is spent.

The request's greenlet only waits: whichever worker dispatched the run sees
it through and records the result, and the store wakes the holder.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from . import metrics
from .disconnect import DisconnectMonitor
from .dispatcher import end_key
from .errors import ClientGone, GatewayError, NotFound, ShuttingDown
from .runs.base import RunRecord

if TYPE_CHECKING:
    from .gateway import Gateway

# A holder re-reads its run at least this often, in case a wake-up was missed.
HOLD_SLICE = 5.0
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d+(?:\.\d+)?)\"?", re.IGNORECASE)


class RecordedError(GatewayError):
    """The error a run ended with, answered exactly as it was recorded."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(str(body.get("error") or "The run failed"))
        self.code = int(body.get("status_code") or 500)
        self.error_type = str(body.get("error_type") or "internal_error")
        self.body = body

    def to_dict(self) -> dict[str, Any]:
        """The recorded body."""
        return dict(self.body)


def wait_budget(asked: float | None, prefer: str | None, cap: float) -> float | None:
    """The seconds a sync request is willing to wait (`"wait"` or `Prefer: wait=`), capped.

    None when the client set no budget: it waits for the run's whole time.
    """
    if asked is None and prefer:
        found = _PREFER_WAIT.search(prefer)
        asked = float(found.group(1)) if found else None
    return None if asked is None else min(float(asked), cap)


def hold(
    gateway: Gateway, record: RunRecord, budget: float, environ: dict[str, Any] | None
) -> RunRecord:
    """Wait until the run ends or `budget` seconds pass; the run as it then stands.

    A client that closes its connection meanwhile cancels the run when
    CANCEL_ON_DISCONNECT is on; otherwise the run goes on without it.

    :raises ClientGone: the client left and the run was cancelled.
    :raises ShuttingDown: this worker is stopping; the run goes on elsewhere.
    """
    store = gateway.runs
    gone = False

    def on_gone() -> None:
        nonlocal gone
        gone = True
        store.waiters.notify([record.id, end_key(record.id)])

    monitor = None
    if environ is not None and gateway.settings.service.cancel_on_disconnect:
        monitor = DisconnectMonitor.attach(environ, on_gone)
    deadline = time.monotonic() + budget
    dispatcher = gateway.dispatcher
    dispatcher.held[record.id] = None
    current: RunRecord | None = record  # as it was just recorded
    metrics.HELD.inc()
    try:
        while True:
            if current is None:
                raise NotFound(f"No run {record.id}", run_id=record.id)
            if current.finished:
                return current
            if gone:
                dispatcher.cancel(record.id)
                raise ClientGone(run_id=record.id, prompt_id=current.prompt_id)
            if gateway.released.is_set():
                raise ShuttingDown(
                    "The gateway is restarting; the run goes on, fetch it later by run_id",
                    run_id=record.id,
                    prompt_id=current.prompt_id,
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return current
            # A run this process executes wakes its holder once, at its end; one
            # dispatched elsewhere, at each change the store hears of.
            local = dispatcher.ends_here(record.id)
            key = end_key(record.id) if local else record.id
            store.waiters.wait(key, min(remaining, HOLD_SLICE))
            current = dispatcher.held.get(record.id) or store.get(record.id)
    finally:
        metrics.HELD.dec()
        dispatcher.held.pop(record.id, None)
        if monitor is not None:
            monitor.stop()
