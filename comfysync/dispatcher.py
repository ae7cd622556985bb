"""The gateway's queue at work: each worker claims runs for its ComfyUI servers and sees
them through, and takes over the runs of workers that died.

Every state change goes through the run store's compare-and-set, so a run
cancelled, or adopted by another worker, while this one was busy with it is
never finished twice: the loser's write is refused and it lets go.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import time
import uuid
from collections import deque
from collections.abc import Collection
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event

from . import metrics
from .comfy.backend import ComfyBackend
from .comfy.protocol import Outcome
from .errors import (
    ComfyUnavailable,
    GatewayError,
    GenerationTimeout,
    NotFound,
    PromptLost,
    ServerDown,
)
from .events.frames import FrameEvents
from .events.writer import EventWriter
from .generation import GenerationResult, collect_outputs, phase_ms, store_outputs
from .greenlets import Background
from .inputs.carry import carry_uploads
from .logs import run_context
from .outputs import OutputFile, list_texts
from .routing import models_of, ranked
from .runs.base import (
    CANCELLED,
    DISPATCHING,
    FAILED,
    IN_FLIGHT,
    OWNED,
    QUEUED,
    RUNNING,
    SUCCESS,
    UPLOADING,
    Claim,
    NewEvent,
    RunRecord,
)
from .storage.base import StoredFile
from .webhooks import outbox
from .webhooks.target import WebhookTarget

if TYPE_CHECKING:
    from .gateway import Gateway

log = logging.getLogger(__name__)

# Failures worth another attempt: ComfyUI lost the prompt (it restarted) or
# could not be reached to take it. Validation and node errors never are.
TRANSIENT = (PromptLost, ComfyUnavailable)
# A dispatcher looks at the queue at least this often, for retries whose
# backoff has passed and for any wake-up that was missed.
IDLE_CHECK = 1.0
# Finished runs past RUN_RETENTION_HOURS are deleted at most this long after.
PRUNE_EVERY = 600.0
# Queued runs past RUN_TIMEOUT (pinned to a server that stays down, say) are
# failed this often, the oldest EXPIRE_BATCH at a time.
EXPIRE_EVERY = 1.0
EXPIRE_BATCH = 100
# A run still executing this long after ComfyUI started it is recorded
# `running`; one done sooner goes straight to its end, `started_at` recorded
# with it. Most quick jobs save a write that way (a quarter of the store's
# time per generation); a status poll sees `running` this much later.
RUNNING_WRITE_DELAY = 0.25


def end_key(run_id: str) -> str:
    """The wake-up key a dispatcher notifies when it is done with a run it executed."""
    return run_id + ":end"


def owner_id() -> str:
    """This process, as the owner of the runs it dispatches: host, pid and a fresh token."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Dispatcher:
    """Claims queued runs while a server has room, runs them, records how they ended."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.store = gateway.runs
        self.settings = gateway.settings
        self.owner = owner_id()
        self.background = Background("dispatcher")
        self.executing: dict[str, Event] = {}  # run id -> set it to abandon the prompt
        # Runs a request of this process holds -> how they ended, once they did:
        # the holder takes the record from here instead of reading it back.
        self.held: dict[str, RunRecord | None] = {}
        self.finished_at: deque[float] = deque(maxlen=256)  # for Retry-After estimates
        self.events = EventWriter(self.store)
        # Run id -> when its last run.progress delivery was made (they are rate-limited).
        self.progress_sent: dict[str, float] = {}
        self.paused = False
        self._pid: int | None = None
        for backend in gateway.backends:
            backend.health.on_up = self._kick_soon  # a server back: it gets work at once
            backend.health.elsewhere = partial(_another_up, gateway.backends, backend)

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        """Start claiming, heartbeating and adopting in this process (again after a fork)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self.owner = owner_id()
        self.background = Background("dispatcher")
        self.store.heartbeat(self.owner, self.settings.runs.owner_ttl)
        self.background.spawn(self._heartbeat_forever, name="heartbeat")
        self.background.spawn(self._adopt_forever, name="adopt")
        self.background.spawn(self._dispatch_forever, name="dispatch")
        self.background.spawn(self._prune_forever, name="prune")
        self.background.spawn(self._expire_forever, name="expire")

    def pause(self) -> None:
        """Claim nothing more (shutting down); runs under way go on."""
        self.paused = True

    def stop(self) -> None:
        """Stop everything and give up ownership at once, so another worker adopts our runs."""
        self.paused = True
        self.background.kill()
        if self._pid == os.getpid():
            self.events.close()
            try:
                self.store.heartbeat(self.owner, 0)
            except GatewayError as err:
                log.warning("could not release runs of %s: %s", self.owner, err)
        self._pid = None

    def _heartbeat_forever(self) -> None:
        ttl = self.settings.runs.owner_ttl
        while True:
            gevent.sleep(ttl / 4)
            try:
                self.store.heartbeat(self.owner, ttl)
            except GatewayError as err:
                log.warning("heartbeat failed: %s", err)

    def _adopt_forever(self) -> None:
        while True:
            if not self.paused:
                try:
                    for record in self.store.adopt(self.owner):
                        log.info(
                            "run %s (%s): taken over from a worker gone", record.id, record.status
                        )
                        self._spawn(record, resumed=True)
                except GatewayError as err:
                    log.warning("could not adopt runs: %s", err)
            gevent.sleep(self.settings.runs.owner_ttl / 2)

    def _prune_forever(self) -> None:
        keep = self.settings.runs.retention_hours * 3600
        while True:
            try:
                pruned = self.store.prune(time.time() - keep)
                if pruned:
                    log.info("pruned %d runs finished over %g hours ago", pruned, keep / 3600)
            except GatewayError as err:
                log.warning("could not prune runs: %s", err)
            gevent.sleep(min(PRUNE_EVERY, keep / 10))

    def _expire_forever(self) -> None:
        while True:
            gevent.sleep(EXPIRE_EVERY)
            if self.paused:
                continue
            try:
                self._expire_queued()
            except GatewayError as err:
                log.warning("could not expire queued runs: %s", err)

    def _expire_queued(self) -> None:
        cutoff = time.time() - self.settings.runs.timeout
        head = self.store.oldest_queued(1)  # usually young: one row read, nothing to do
        if not head or head[0].created_at > cutoff:
            return
        for record in self.store.oldest_queued(EXPIRE_BATCH):
            if record.created_at > cutoff:
                continue
            where = (record.route or {}).get("server")
            why = f"server {where} did not take it" if where else "no ComfyUI server took it"
            err = GenerationTimeout(
                f"The run waited {self.settings.runs.timeout:g} s in the queue; {why}"
            )
            self._fail(record, err, expect={QUEUED})

    def _dispatch_forever(self) -> None:
        while True:
            self.kick()
            self.store.wait_for_work(IDLE_CHECK)

    def kick(self) -> None:
        """Claim runs while a server has room, in the calling greenlet.

        Called where a run was just queued or a place just freed: a woken
        dispatcher greenlet would wait its turn behind every other ready
        greenlet (a burst of a thousand requests), leaving ComfyUI idle.
        """
        if self.paused or self._pid != os.getpid():
            return
        try:
            while self._claim_one():
                pass
        except GatewayError as err:
            log.warning("could not claim runs: %s", err)

    def _kick_soon(self) -> None:
        # Told on the socket's reader greenlet, which must not wait for the store.
        self.background.spawn(self.kick, name="kick")

    def _claim_one(self) -> bool:
        # Which run comes next is the store's to say (priority, then age);
        # the router says which server would take one soonest. With nothing
        # to claim (most wake-ups), one read instead of a claim per server.
        servers = ranked(self.gateway.backends)
        if len(servers) > 1 and not self.store.any_ready():
            return False
        for backend in servers:
            record = self.store.claim(
                backend.name,
                self.owner,
                limit=backend.store_limit,
                prompt_id=str(uuid.uuid4()),
                client_id=backend.client_id,
                tags=backend.tags,
            )
            if record is not None:
                self._spawn(record, resumed=False)
                return True
        return False

    def offer(self, record: RunRecord) -> Claim | None:
        """Where this process would dispatch `record`, being created, if it may (see `taken`)."""
        if self.paused or self._pid != os.getpid():
            return None
        best = ranked(
            self.gateway.backends,
            record.route,
            workflow=record.request.get("workflow"),
            models=models_of(record.graph),
        )
        if not best:
            return None
        backend = best[0]
        return Claim(
            backend.name, self.owner, backend.store_limit, str(uuid.uuid4()), backend.client_id
        )

    def taken(self, record: RunRecord) -> None:
        """See through a run the store created claimed for `offer`; otherwise claim runs.

        Its `queued` event says where it stands in the gateway's queue.
        """
        if record.status == DISPATCHING and record.owner == self.owner:
            self.events.emit(record.id, [("queued", {"position": 0})])
            self._spawn(record, resumed=False)
            return
        # Written now, not batched: another worker may claim and start the run at
        # once, and its `started` must not be stored before this `queued`.
        try:
            position = self.store.queue_position(record.id)
            self.store.append_events([(record.id, "queued", {"position": position})])
        except GatewayError as err:
            log.warning("run %s: could not record its queued event: %s", record.id, err)
        self.kick()

    # -- one run ----------------------------------------------------------------

    def _spawn(self, record: RunRecord, *, resumed: bool) -> None:
        # Registered before the greenlet runs, so a holder of this process can
        # tell at once that the run is ours (see `ends_here`).
        abandon = self.executing[record.id] = Event()
        if record.status in IN_FLIGHT:
            self.gateway.backend(record.server).claimed += 1  # until its prompt ends there
        self.background.spawn(self._execute, record, resumed, abandon, name="run")

    def ends_here(self, run_id: str) -> bool:
        """Whether this process is seeing the run through: it will notify `end_key(run_id)`."""
        return run_id in self.executing

    def _execute(self, record: RunRecord, resumed: bool, abandon: Event) -> None:
        with run_context(run_id=record.id, prompt_id=record.prompt_id, server=record.server):
            try:
                if record.status == UPLOADING:
                    self._upload(record, _restore_files(record))
                else:
                    backend = self.gateway.backend(record.server)
                    self._see_through(record, backend, resumed, abandon)
            except Exception as err:  # noqa: BLE001 - a bug must still end the run, not strand it
                log.exception("run %s failed unexpectedly", record.id)
                self._fail(record, GatewayError(f"internal error: {type(err).__name__}"))
            finally:
                self.executing.pop(record.id, None)
                # Finished, failed, queued again or taken by someone else: a holder
                # of this process waiting for the end looks at the record again.
                self.store.waiters.notify([end_key(record.id)])

    def _see_through(
        self, record: RunRecord, backend: ComfyBackend, resumed: bool, abandon: Event
    ) -> None:
        deadline = time.monotonic() + max(
            0.0, record.created_at + self.settings.runs.timeout - time.time()
        )
        marks: dict[str, float] = {"start": record.created_at}
        running: list[gevent.Greenlet] = []
        try:
            try:
                if not resumed:
                    carry_uploads(record, self.gateway.backend(record.uploads_on), backend)
                outcome = backend.run_prompt(
                    None if resumed else record.graph,
                    record.prompt_id or "",
                    deadline,
                    abandon=abandon,
                    on_submitted=lambda: marks.__setitem__("queued", time.time()),
                    on_frame=self._progress_listener(record, marks, running),
                )
            finally:
                backend.claimed -= 1
        except GatewayError as err:
            _kill(running)
            self._attempt_failed(record, err)
            return
        marks["executed"] = time.time()
        began = marks.get("started", marks.get("queued"))
        if began is not None:
            workflow = record.request.get("workflow")
            backend.job_done(marks["executed"] - began, workflow, models_of(record.graph))
        # ComfyUI is done with the prompt: its place there is free while we copy
        # the outputs, though the store counts the run in flight until recorded.
        backend.collecting += 1
        try:
            self.kick()
            collected = self._collect(record, backend, outcome, deadline, marks, running)
        finally:
            backend.collecting -= 1
        if collected is not None:
            self._upload(*collected)

    def _collect(
        self,
        record: RunRecord,
        backend: ComfyBackend,
        outcome: Outcome,
        deadline: float,
        marks: dict[str, float],
        running: list[gevent.Greenlet],
    ) -> tuple[RunRecord, tuple[list[OutputFile], list[StoredFile]]] | None:
        """Copy the outputs and record the run out of flight; what is left to upload, if any."""
        try:
            files, stored = collect_outputs(
                backend, record, outcome, deadline, self.settings.comfy.read_timeout
            )
        except GatewayError as err:
            self._attempt_failed(record, err)
            return None
        finally:
            _kill(running)
        marks["fetched"] = time.time()
        partial = _partial_result(outcome, list_texts(outcome.outputs), marks)
        if self.gateway.remote is None:
            # Nothing to upload: the local copies are the result, one write.
            self._finish(record, files, stored, [], partial, expect=IN_FLIGHT)
            return None
        # Recorded before the upload: a restart from here only uploads again.
        uploading = self.store.update(
            record.id,
            expect=IN_FLIGHT,
            events=[*self.events.take(record.id), ("uploading", {})],
            status=UPLOADING,
            started_at=record.started_at or marks.get("started"),
            files=[_file_entry(s, f) for s, f in zip(stored, files, strict=True)],
            result=partial,
            progress=_progress(record, record.progress.get("total", 0), "uploading"),
        )
        return None if uploading is None else (uploading, (files, stored))

    def _upload(self, record: RunRecord, copies: tuple[list[OutputFile], list[StoredFile]]) -> None:
        files, stored = copies
        uploaded, warnings = store_outputs(self.gateway, record.prompt_id or record.id, stored)
        if warnings:
            metrics.UPLOAD_FAILURES.inc(len(warnings))
        self._finish(record, files, uploaded, warnings, record.result or {}, expect={UPLOADING})

    def _finish(
        self,
        record: RunRecord,
        files: list[OutputFile],
        stored: list[StoredFile],
        warnings: list[str],
        partial: dict[str, Any],
        *,
        expect: Collection[str],
    ) -> None:
        marks = dict(partial.get("marks") or {"start": record.created_at})
        marks["stored"] = time.time()
        result = GenerationResult(
            record.prompt_id or "",
            files,
            stored,
            partial.get("texts") or [],
            partial.get("execution_time"),
            phase_ms(marks),
            warnings,
        ).to_dict()
        answer = result | {"run_id": record.id}
        changes = {
            "status": SUCCESS,
            "started_at": record.started_at or marks.get("started"),
            "result": answer,
            "files": [_file_entry(s, f) for s, f in zip(stored, files, strict=True)],
            "ended_at": time.time(),
            "progress": _progress(record, record.progress.get("total", 0), "done", done=True),
        }
        done = self._end(record, expect, changes, ("succeeded", answer))
        if done is not None:
            metrics.observe_phases(record.request.get("workflow"), answer["timings"])
            self._ended(done)

    def _end(
        self,
        record: RunRecord,
        expect: Collection[str],
        changes: dict[str, Any],
        final: NewEvent,
        *,
        pending: bool = True,
    ) -> RunRecord | None:
        """Record a run's end with its last events and its webhooks, in one write.

        `pending` takes the run's events this process has not written yet
        (off where another process may be the one watching it).
        """
        events = [*self.events.take(record.id), final] if pending else [final]
        self.progress_sent.pop(record.id, None)
        ended = self.store.update(
            record.id,
            expect=expect,
            events=events,
            deliveries=outbox.on_end(record.evolve(**changes), final[0], self.settings.webhooks),
            **changes,
        )
        if ended is not None:
            metrics.RUNS.labels(final[0]).inc()
        return ended

    def _progress_listener(
        self, record: RunRecord, marks: dict[str, float], running: list[gevent.Greenlet]
    ) -> Any:
        total = len(record.graph or {})
        frames = FrameEvents(record.graph)
        progress_hook = outbox.progress_target(record, self.settings.webhooks)

        def on_frame(kind: str, data: dict[str, Any]) -> None:
            # Called on the WebSocket reader greenlet: writes happen elsewhere.
            events = frames.on_frame(kind, data)
            if events:
                self.events.emit(record.id, events)
                if progress_hook is not None and events[-1][0] == "progress":
                    self._progress_webhook(record, events[-1][1], progress_hook)
            if kind == "execution_start" and "started" not in marks:
                at = marks["started"] = time.time()
                running.append(
                    self.background.spawn_later(
                        RUNNING_WRITE_DELAY, self._started, record, total, at, name="running"
                    )
                )

        return on_frame

    def _progress_webhook(
        self, record: RunRecord, progress: dict[str, Any], target: WebhookTarget
    ) -> None:
        """A `run.progress` delivery, at most one per WEBHOOK_PROGRESS_INTERVAL per run."""
        now = time.monotonic()
        last = self.progress_sent.get(record.id)
        if last is not None and now - last < self.settings.webhooks.progress_interval:
            return
        self.progress_sent[record.id] = now
        delivery = outbox.on_progress(record, progress, target)
        self.background.spawn(self._save_delivery, delivery, name="progress-webhook")

    def _save_delivery(self, delivery: Any) -> None:
        try:
            self.store.save_delivery(delivery)
        except GatewayError as err:
            log.warning("run %s: could not record a progress webhook: %s", delivery.run_id, err)

    def _started(self, record: RunRecord, total: int, at: float) -> None:
        self.store.update(
            record.id,
            expect=IN_FLIGHT,
            status=RUNNING,
            started_at=at,
            progress=_progress(record, total, "running"),
        )

    def _attempt_failed(self, record: RunRecord, err: GatewayError) -> None:
        attempts = [dict(a) for a in record.attempts]
        if attempts:
            attempts[-1].update(ended_at=time.time(), error=err.error_type)
        left = record.created_at + self.settings.runs.timeout - time.time()
        if isinstance(err, TRANSIENT) and len(attempts) < self.settings.runs.max_attempts:
            delay = self.settings.runs.retry_base * 2 ** max(0, len(attempts) - 1)
            if isinstance(err, ServerDown):
                delay = 0.0  # another server can take it now
            if delay < left:
                log.info("run %s: attempt %d failed (%s), retrying", record.id, len(attempts), err)
                self.store.update(
                    record.id,
                    expect=IN_FLIGHT,
                    events=[
                        *self.events.take(record.id),
                        ("retrying", {"attempt": len(attempts), "error": err.error_type}),
                    ],
                    status=QUEUED,
                    owner=None,
                    not_before=time.time() + delay,
                    attempts=attempts,
                    progress=_progress(record, record.progress.get("total", 0), "retrying"),
                )
                return
        self._fail(record, err, attempts)

    def _fail(
        self,
        record: RunRecord,
        err: GatewayError,
        attempts: list[dict[str, Any]] | None = None,
        *,
        expect: Collection[str] = OWNED,
    ) -> None:
        if isinstance(err, GenerationTimeout) and record.status != QUEUED:
            err.message = (
                f"No result after {self.settings.runs.timeout:g} s; "
                "the prompt keeps running, fetch it later by prompt_id"
            )
        body = err.to_dict() | {"run_id": record.id}
        if record.prompt_id and "prompt_id" not in body:
            body["prompt_id"] = record.prompt_id
        changes: dict[str, Any] = {"status": FAILED, "error": body, "ended_at": time.time()}
        if attempts is not None:
            changes["attempts"] = attempts
        changes["progress"] = _progress(record, record.progress.get("total", 0), "failed")
        failed = self._end(record, expect, changes, ("failed", body))
        if failed is not None:
            self._ended(failed)

    def _ended(self, record: RunRecord) -> None:
        if record.id in self.held:
            self.held[record.id] = record
        self.finished_at.append(time.monotonic())
        self.kick()  # a place is free

    # -- asked by requests ---------------------------------------------------------

    def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run: out of our queue, out of ComfyUI's queue, or interrupted.

        A run whose outputs are already being stored is past cancelling.

        :raises NotFound: no such run.
        """
        record = self.store.get(run_id)
        if record is None:
            raise NotFound(f"No run {run_id}", run_id=run_id)
        if record.status not in ({QUEUED} | IN_FLIGHT):
            return record
        body = {
            "status": "error",
            "error": "The run was cancelled",
            "error_type": "cancelled",
            "status_code": 409,
            "run_id": run_id,
        }
        changes = {
            "status": CANCELLED,
            "cancel_requested": True,
            "ended_at": time.time(),
            "error": body,
            "progress": _progress(record, record.progress.get("total", 0), "cancelled"),
        }
        # Events another process holds for the run come after; streams end at this one.
        cancelled = self._end(
            record,
            {QUEUED} | IN_FLIGHT,
            changes,
            ("cancelled", body),
            pending=run_id in self.executing,
        )
        self.store.waiters.notify([end_key(run_id)])
        if cancelled is None:  # it moved on meanwhile
            return self.store.get(run_id) or record
        if record.status in IN_FLIGHT and record.prompt_id:
            abandon = self.executing.get(run_id)
            if abandon is not None:
                abandon.set()  # our own: the backend cancels it in ComfyUI
            else:
                self.gateway.backend(record.server).cancel(record.prompt_id)
        return cancelled

    def retry_after(self) -> int:
        """Seconds a client refused for a full queue should wait, from recent throughput."""
        now = time.monotonic()
        recent = [t for t in self.finished_at if now - t < 60]
        rate = len(recent) / max(1.0, now - recent[0]) if len(recent) > 1 else 0.0
        queued = self.store.queued_count()
        if rate <= 0:
            return max(1, min(60, queued))
        return max(1, min(3600, math.ceil(queued / rate)))


def _another_up(backends: list[ComfyBackend], this: ComfyBackend) -> bool:
    return any(backend.up for backend in backends if backend is not this)


def _kill(writers: list[gevent.Greenlet]) -> None:
    for writer in writers:
        writer.kill(block=False)  # not yet written: the next write says it


def _progress(record: RunRecord, total: int, message: str, *, done: bool = False) -> dict[str, Any]:
    current = total if done else record.progress.get("current", 0)
    return {"current": current, "total": total, "message": message}


def _partial_result(outcome: Outcome, texts: list[dict[str, Any]], marks: dict[str, float]) -> dict:
    """What finishing after a restart needs besides the local copies."""
    return {"texts": texts, "execution_time": outcome.execution_time, "marks": marks}


def _file_entry(stored: StoredFile, file: OutputFile) -> dict[str, Any]:
    return {"stored": asdict(stored), "output": asdict(file)}


def _restore_files(record: RunRecord) -> tuple[list[OutputFile], list[StoredFile]]:
    files = [OutputFile(**entry["output"]) for entry in record.files]
    stored = []
    for entry in record.files:
        values = dict(entry["stored"])
        if values.get("pixel_size") is not None:
            values["pixel_size"] = tuple(values["pixel_size"])
        stored.append(StoredFile(**values))
    return files, stored
