"""The embedded run store: one SQLite file shared by the worker processes of one host.

Every operation is one transaction on one connection per process, so it is
correct across processes; read-modify-writes take the write lock up front
(`BEGIN IMMEDIATE`). No statement yields to gevent inside a transaction, so
the lock is held for microseconds, and a process that finds the file locked
never waits in SQLite's busy handler (that would stop its event loop): it
sleeps cooperatively and tries again, for `busy_timeout` seconds at most.

Durability: WAL with `synchronous=NORMAL`. A commit is in the WAL file (the
kernel's page cache) when it returns, so a crashed or killed (`kill -9`)
process loses nothing; only a power cut can lose the last commits, never
corrupt the file. That is what a gateway's queue needs, and it keeps fsync
off the commit path.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeVar

import gevent
from gevent.event import Event

from ..greenlets import Background
from .base import (
    CLAIM_SCAN,
    DISPATCHING,
    IN_FLIGHT,
    OWNED,
    PENDING,
    QUEUED,
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
    admits,
    apply_changes,
    check_changes,
    cursor_seq,
    events_key,
    new_attempt,
    seq_cursor,
    wakes_queue,
)
from .bus import EVERYTHING, DatagramBus, bus_folder

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 2  # 2: events and deliveries


def _in(statuses: Collection[str]) -> str:
    """An SQL list of status literals (our own constants, never user input)."""
    return "(" + ", ".join(f"'{s}'" for s in sorted(statuses)) + ")"


_IN_FLIGHT = _in(IN_FLIGHT)
_OWNED = _in(OWNED)
_TERMINAL = _in(TERMINAL)

# `seq` is the rowid and AUTOINCREMENT, so it is never reused, even after the
# newest run is pruned: it orders the queue (FIFO) and is the listing cursor.
#
# Every index costs each status change a page in the WAL, so there are few:
# runs_status serves listing (status, seq) and, with `server` in it, counts a
# server's in-flight runs from the index alone; adopt reads the few OWNED runs
# through it too. Two partial indexes that did that work cost 215 µs per status
# change between them (SQLite 3.40, 12,000 runs; a plain update costs 24 µs),
# and the life cycle ran at 690 runs/s instead of 1,000+. The queue's own
# partial index holds only queued runs, in claim order.
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        priority INTEGER NOT NULL,
        created_at REAL NOT NULL,
        ended_at REAL,
        server TEXT,
        owner TEXT,
        not_before REAL NOT NULL,
        idempotency_key TEXT UNIQUE,
        doc TEXT NOT NULL
    )""",
    f"""CREATE INDEX IF NOT EXISTS runs_queue ON runs (priority DESC, seq, not_before)
        WHERE status = '{QUEUED}'""",
    "CREATE INDEX IF NOT EXISTS runs_status ON runs (status, seq, server)",
    f"CREATE INDEX IF NOT EXISTS runs_ended ON runs (ended_at) WHERE status IN {_TERMINAL}",
    """CREATE TABLE IF NOT EXISTS owners (
        owner TEXT NOT NULL PRIMARY KEY,
        expires_at REAL NOT NULL
    )""",
    # A run's events in order; the primary key finds the newest seq of a run.
    """CREATE TABLE IF NOT EXISTS events (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS deliveries (
        id TEXT NOT NULL PRIMARY KEY,
        run_id TEXT NOT NULL,
        state TEXT NOT NULL,
        next_at REAL NOT NULL,
        created_at REAL NOT NULL,
        doc TEXT NOT NULL
    )""",
    f"""CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_at)
        WHERE state = '{PENDING}'""",
    "CREATE INDEX IF NOT EXISTS deliveries_run ON deliveries (run_id, created_at)",
)
# Columns copied out of the document for the queries; rewritten only when changed.
_COLUMNS = ("status", "priority", "ended_at", "server", "owner", "not_before")

_COUNT_IN_FLIGHT = f"""SELECT count(*) FROM runs INDEXED BY runs_status
    WHERE status IN {_IN_FLIGHT} AND server = ?"""
# Without ANALYZE statistics the planner prefers runs_status and sorts every
# queued run on each claim; INDEXED BY walks the queue in its order instead.
_NEXT_QUEUED = f"""SELECT doc FROM runs INDEXED BY runs_queue
    WHERE status = '{QUEUED}' AND not_before <= ? ORDER BY priority DESC, seq LIMIT {CLAIM_SCAN}"""
_OLDEST_QUEUED = f"""SELECT doc FROM runs INDEXED BY runs_status
    WHERE status = '{QUEUED}' ORDER BY seq LIMIT ?"""
# Whether a claim would take some queued run of at least this priority now.
_QUEUED_FROM = f"""SELECT 1 FROM runs INDEXED BY runs_queue
    WHERE status = '{QUEUED}' AND priority >= ? AND not_before <= ? LIMIT 1"""
_ANY_PRIORITY = -(1 << 63)
_COUNT_QUEUED = f"SELECT count(*) FROM runs WHERE status = '{QUEUED}'"
_POSITION = f"""SELECT (SELECT count(*) FROM runs AS o WHERE o.status = '{QUEUED}'
        AND (o.priority > r.priority OR (o.priority = r.priority AND o.seq < r.seq)))
    FROM runs AS r WHERE r.id = ? AND r.status = '{QUEUED}'"""
_ORPHANS = f"""SELECT doc FROM runs INDEXED BY runs_status WHERE status IN {_OWNED}
    AND (owner IS NULL OR (owner != ?
        AND owner NOT IN (SELECT owner FROM owners WHERE expires_at > ?)))"""
_PRUNABLE = f"""SELECT seq, id FROM runs INDEXED BY runs_ended
    WHERE status IN {_TERMINAL} AND ended_at < ? LIMIT ?"""
# The next event of a run gets the seq after its newest; none for a run that is gone.
_APPEND_EVENT = """INSERT INTO events (run_id, seq, doc)
    SELECT ?1, coalesce((SELECT max(seq) FROM events WHERE run_id = ?1), 0) + 1, ?2
    WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?1)"""
_DUE = f"""SELECT doc FROM deliveries INDEXED BY deliveries_due
    WHERE state = '{PENDING}' AND next_at <= ? ORDER BY next_at LIMIT ?"""
_SAVE_DELIVERY = """INSERT INTO deliveries (id, run_id, state, next_at, created_at, doc)
    VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET
    state = excluded.state, next_at = excluded.next_at, doc = excluded.doc"""
_PRUNE_BATCH = 500
# How long a checkpoint waits in SQLite's busy handler (in its pool thread) for
# the write lock and for reads under way; then it is a passive one.
_RESTART_WAIT = 0.05
# Heartbeats of owners gone this long are deleted (they no longer matter to adopt).
_OWNER_FORGET_AFTER = 3600.0

# Lock retries: short at first (a commit holds the lock for tens of µs), then
# backing off so a long prune elsewhere is not hammered.
_FIRST_DELAY = 0.0002
_MAX_DELAY = 0.02

# Connections inherited through fork(): never used and never closed, because
# closing one in the child could release this process's own POSIX locks on
# the file (SQLite's "do not carry a connection across fork" rule).
_INHERITED: list[sqlite3.Connection] = []


def _is_busy(err: sqlite3.OperationalError) -> bool:
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(err) or "busy" in str(err)


class SqliteRunStore(RunStore):
    """Runs in one SQLite file (WAL), shared by the processes of one host.

    An operation that finds the file locked tries again for `busy_timeout`
    seconds, then raises RunStoreUnavailable. `checkpoint_interval` > 0 turns
    SQLite's automatic checkpoints off and runs a passive checkpoint that often
    in a thread of gevent's pool instead; 0 leaves them to SQLite.
    """

    name = "sqlite"

    def __init__(
        self, path: str, *, busy_timeout: float = 5.0, checkpoint_interval: float = 1.0
    ) -> None:
        super().__init__()
        self.path = os.path.abspath(path)
        self.busy_timeout = busy_timeout
        self.checkpoint_interval = checkpoint_interval
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._conn: sqlite3.Connection | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpointing: Any = None  # the pool's result while a checkpoint runs
        self._closed = False
        self._start()

    # -- connection, schema, fork ------------------------------------------------------

    def _start(self) -> None:
        self._pid = os.getpid()
        # While a checkpoint restarts the WAL; a forked child never waits for its parent's.
        self._writes_held: Event | None = None
        self._conn = None
        self._checkpoint_conn = None
        try:
            self._run(self._set_up, begin=None)
        except BaseException:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            raise
        self._background = Background("runs-sqlite")
        self._bus = DatagramBus(bus_folder(self.path), self._heard)
        if self.checkpoint_interval > 0:
            self._background.spawn(self._checkpoints, name="checkpoints")

    def _db(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self._after_fork()
        if self._conn is None:
            if self._closed:
                raise RuntimeError("the run store is closed")
            self._conn = self._connect()
        return self._conn

    # Checkpoints: SQLite's own run inside the commit that crosses 1,000 WAL
    # pages (every ~50 runs here), copying pages and fsyncing on the event
    # loop. Measured with `python -m bench.runstore`, one greenlet: loop lag
    # p99 4.9-8.4 ms that way, 0.4-4.2 ms with a passive checkpoint every
    # second in a pool thread (it releases the GIL while it copies and syncs),
    # for the same throughput. The WAL then grows to about a second of writes.
    def _connect(self) -> sqlite3.Connection:
        # timeout=0: a locked file raises at once, and `_run` waits cooperatively.
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, cached_statements=256)
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            if self.checkpoint_interval > 0:
                conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            conn.close()  # busy while another process creates the file: `_run` retries
            raise
        return conn

    def _set_up(self, db: sqlite3.Connection) -> None:
        # Outside a transaction: SQLite refuses to change the journal mode inside one.
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RunStoreUnavailable(f"{self.path} cannot use WAL (journal mode {mode})")
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has run store schema {version}; this version knows "
                    f"{SCHEMA_VERSION} at most"
                )
            for statement in _SCHEMA:
                db.execute(statement)
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _after_fork(self) -> None:
        """In a forked child: a connection and a bus of its own, the parent's left alone."""
        for conn in (self._conn, self._checkpoint_conn):
            if conn is not None:
                _INHERITED.append(conn)
        self._background.group.kill(block=False)
        self._bus.abandon()
        self._start()

    # -- transactions ---------------------------------------------------------------------

    def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        held = self._writes_held
        if held is not None:
            held.wait(timeout=self.busy_timeout)  # a checkpoint starts the WAL over
        return self._run(op, begin="BEGIN IMMEDIATE")

    def _write_change(
        self,
        op: Callable[[sqlite3.Connection], tuple[RunRecord, RunRecord] | None],
        also: Iterable[str] = (),
    ) -> RunRecord | None:
        """`_write` an op that changes one run (old, new) or nothing; tell who waits
        (for the run, and for the keys in `also` once the change was made)."""
        result = self._write(op)
        if result is None:
            return None
        old, new = result
        self._changed([(old.status, new)], also)
        return new

    def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        return self._run(op, begin=None)

    def _run(self, op: Callable[[sqlite3.Connection], T], *, begin: str | None) -> T:
        """Run `op` in a transaction, retrying cooperatively while another process holds the lock.

        :raises RunStoreUnavailable: still locked after `busy_timeout` seconds, or an I/O error.
        """
        deadline = time.monotonic() + self.busy_timeout
        delay = _FIRST_DELAY
        while True:
            try:
                db = self._db()  # connecting reads the file header, which may be locked too
                if begin is not None:
                    db.execute(begin)
                try:
                    result = op(db)
                    if db.in_transaction:
                        db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
                return result
            except sqlite3.OperationalError as err:
                if not _is_busy(err):
                    raise RunStoreUnavailable(f"run store {self.path}: {err}") from err
                if time.monotonic() >= deadline:
                    raise RunStoreUnavailable(
                        f"run store {self.path} stayed locked for {self.busy_timeout:g} s"
                    ) from err
            gevent.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)

    # -- wake-ups ------------------------------------------------------------------------

    def _changed(
        self, changes: Iterable[tuple[str | None, RunRecord]], also: Iterable[str] = ()
    ) -> None:
        """Wake this process's waiters and every other process's, after a commit."""
        keys: list[str] = list(also)
        queue = False
        for old_status, record in changes:
            keys.append(record.id)
            queue = queue or wakes_queue(old_status, record.status)
        if queue:
            keys.append(ChangeWaiters.QUEUE)
        if keys:
            self.waiters.notify(keys)
            self._bus.publish(keys)

    def _heard(self, keys: list[str]) -> None:
        if EVERYTHING in keys:
            self.waiters.notify_all()
        else:
            self.waiters.notify(keys)

    # -- records -------------------------------------------------------------------------

    def create(
        self,
        record: RunRecord,
        *,
        max_queued: int = 0,
        claim: Claim | None = None,
        events: Iterable[NewEvent] = (),
    ) -> tuple[RunRecord, bool]:
        events = list(events)

        def op(db: sqlite3.Connection) -> tuple[RunRecord, bool]:
            if record.idempotency_key is not None:
                row = db.execute(
                    "SELECT doc FROM runs WHERE idempotency_key = ?", (record.idempotency_key,)
                ).fetchone()
                if row is not None:
                    existing = RunRecord.from_json(row[0])
                    if existing.body_hash != record.body_hash:
                        raise IdempotencyConflict()
                    return existing, False
            row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'runs'").fetchone()
            stored = record.evolve(seq=(row[0] if row else 0) + 1)
            if claim is not None and record.status == QUEUED and _may_claim_new(db, record, claim):
                stored = _claimed(stored, claim, time.time())
            elif max_queued > 0 and record.status == QUEUED:
                if db.execute(_COUNT_QUEUED).fetchone()[0] >= max_queued:
                    raise QueueFull()
            try:
                db.execute(
                    """INSERT INTO runs (seq, id, status, priority, created_at, ended_at,
                        server, owner, not_before, idempotency_key, doc)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (
                        stored.seq,
                        stored.id,
                        stored.status,
                        stored.priority,
                        stored.created_at,
                        stored.ended_at,
                        stored.server,
                        stored.owner,
                        stored.not_before,
                        stored.idempotency_key,
                        stored.to_json(),
                    ),
                )
            except sqlite3.IntegrityError as err:
                raise ValueError(f"run {record.id} exists already") from err
            _insert_events(db, stored.id, events, stored.created_at)
            return stored, True

        stored, new = self._write(op)
        if new:
            self._changed([(None, stored)], [events_key(stored.id)] if events else ())
        return stored, new

    def get(self, run_id: str) -> RunRecord | None:
        row = self._read(
            lambda db: db.execute("SELECT doc FROM runs WHERE id = ?", (run_id,)).fetchone()
        )
        return RunRecord.from_json(row[0]) if row else None

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
        events = list(events)
        deliveries = list(deliveries)
        also = [events_key(run_id)] if events else []
        if deliveries:
            also.append(ChangeWaiters.OUTBOX)

        # Read, change and rewrite in Python, not one UPDATE ... json_set(doc, ...)
        # RETURNING doc: that was slower with SQLite 3.40, whose JSON functions parse
        # and print the whole document on every call (per call, three interleaved
        # runs in one process: the success update 175-204 -> 214-263 µs, running
        # 141-165 -> 146-176 µs, an empty claim 29-35 -> 41-47 µs), and the
        # returned document still has to be parsed here.
        def op(db: sqlite3.Connection) -> tuple[RunRecord, RunRecord] | None:
            row = db.execute("SELECT doc FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            old = RunRecord.from_json(row[0])
            if expect is not None and old.status not in expect:
                return None
            new = apply_changes(old, changes, time.time())
            _rewrite(db, old, new)
            _insert_events(db, run_id, events, new.updated_at)
            for delivery in deliveries:
                _save_delivery(db, delivery)
            return old, new

        return self._write_change(op, also)

    # -- events ----------------------------------------------------------------------------

    def append_events(self, events: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        batch = list(events)
        if not batch:
            return
        now = time.time()

        def op(db: sqlite3.Connection) -> None:
            db.executemany(
                _APPEND_EVENT,
                [(run_id, RunEvent(0, kind, data, now).to_json()) for run_id, kind, data in batch],
            )

        self._write(op)
        keys = list(dict.fromkeys(events_key(run_id) for run_id, _, _ in batch))
        self.waiters.notify(keys)
        self._bus.publish(keys)

    def events(self, run_id: str, *, after: int = 0, limit: int = 1000) -> list[RunEvent]:
        rows = self._read(
            lambda db: db.execute(
                "SELECT seq, doc FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (run_id, after, max(1, limit)),
            ).fetchall()
        )
        return [RunEvent.from_json(seq, doc) for seq, doc in rows]

    def last_event(self, run_id: str) -> RunEvent | None:
        row = self._read(
            lambda db: db.execute(
                "SELECT seq, doc FROM events WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,)
            ).fetchone()
        )
        return RunEvent.from_json(*row) if row else None

    # -- the webhook outbox -------------------------------------------------------------------

    def due_deliveries(self, now: float, *, lease: float, limit: int) -> list[Delivery]:
        def op(db: sqlite3.Connection) -> list[Delivery]:
            taken = []
            for (doc,) in db.execute(_DUE, (now, max(1, limit))).fetchall():
                delivery = Delivery.from_json(doc)
                delivery.next_at = now + lease
                _save_delivery(db, delivery)
                taken.append(delivery)
            return taken

        # Senders look often and mostly find nothing: a look without the write lock first.
        if self._read(lambda db: db.execute(_DUE, (now, 1)).fetchone()) is None:
            return []
        return self._write(op)

    def save_delivery(self, delivery: Delivery) -> None:
        self._write(lambda db: _save_delivery(db, delivery))
        if delivery.state == PENDING:
            self.waiters.notify([ChangeWaiters.OUTBOX])
            self._bus.publish([ChangeWaiters.OUTBOX])

    def deliveries(self, run_id: str) -> list[Delivery]:
        rows = self._read(
            lambda db: db.execute(
                "SELECT doc FROM deliveries WHERE run_id = ? ORDER BY created_at, id", (run_id,)
            ).fetchall()
        )
        return [Delivery.from_json(doc) for (doc,) in rows]

    def next_delivery_at(self) -> float | None:
        row = self._read(
            lambda db: db.execute(
                f"SELECT min(next_at) FROM deliveries WHERE state = '{PENDING}'"
            ).fetchone()
        )
        return row[0] if row else None

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
        def op(db: sqlite3.Connection) -> tuple[RunRecord, RunRecord] | None:
            if limit > 0 and db.execute(_COUNT_IN_FLIGHT, (server,)).fetchone()[0] >= limit:
                return None
            now = time.time()
            for (doc,) in db.execute(_NEXT_QUEUED, (now,)):
                old = RunRecord.from_json(doc)
                if admits(old.route, server, tags):
                    break
            else:
                return None
            new = _claimed(old, Claim(server, owner, limit, prompt_id, client_id), now)
            _rewrite(db, old, new)
            return old, new

        # Most claims find nothing (every queue change wakes each dispatcher,
        # and the run it woke for was often claimed inline already): a look
        # without the write lock spares them a write transaction.
        if not self.any_ready():
            return None
        return self._write_change(op)

    def any_ready(self) -> bool:
        anything = (_ANY_PRIORITY, time.time())
        return self._read(lambda db: db.execute(_QUEUED_FROM, anything).fetchone()) is not None

    def oldest_queued(self, limit: int) -> list[RunRecord]:
        rows = self._read(lambda db: db.execute(_OLDEST_QUEUED, (limit,)).fetchall())
        return [RunRecord.from_json(r[0]) for r in rows]

    def queue_position(self, run_id: str) -> int | None:
        row = self._read(lambda db: db.execute(_POSITION, (run_id,)).fetchone())
        return row[0] if row else None

    def queued_count(self) -> int:
        return int(self._read(lambda db: db.execute(_COUNT_QUEUED).fetchone()[0]))

    def in_flight(self, server: str) -> int:
        return int(self._read(lambda db: db.execute(_COUNT_IN_FLIGHT, (server,)).fetchone()[0]))

    def list_runs(
        self, *, status: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[RunRecord], str | None]:
        limit = max(1, limit)
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if cursor is not None:
            where.append("seq < ?")
            params.append(cursor_seq(cursor))
        sql = "SELECT doc FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        rows = self._read(lambda db: db.execute(sql, (*params, limit + 1)).fetchall())
        runs = [RunRecord.from_json(r[0]) for r in rows[:limit]]
        return runs, (seq_cursor(runs[-1].seq) if len(rows) > limit else None)

    # -- owners and recovery -------------------------------------------------------------

    def heartbeat(self, owner: str, ttl: float) -> None:
        now = time.time()

        def op(db: sqlite3.Connection) -> None:
            db.execute(
                """INSERT INTO owners (owner, expires_at) VALUES (?, ?)
                ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at""",
                (owner, now + ttl),
            )
            db.execute("DELETE FROM owners WHERE expires_at < ?", (now - _OWNER_FORGET_AFTER,))

        self._write(op)

    def adopt(self, owner: str) -> list[RunRecord]:
        def op(db: sqlite3.Connection) -> list[tuple[RunRecord, RunRecord]]:
            now = time.time()
            changed = []
            for (doc,) in db.execute(_ORPHANS, (owner, now)).fetchall():
                old = RunRecord.from_json(doc)
                new = old.evolve(owner=owner, updated_at=now)
                _rewrite(db, old, new)
                changed.append((old, new))
            return changed

        changed = self._write(op)
        self._changed((old.status, new) for old, new in changed)
        return [new for _, new in changed]

    def prune(self, ended_before: float) -> int:
        def op(db: sqlite3.Connection) -> int:
            rows = db.execute(_PRUNABLE, (ended_before, _PRUNE_BATCH)).fetchall()
            db.executemany("DELETE FROM runs WHERE seq = ?", [(seq,) for seq, _ in rows])
            ids = [(run_id,) for _, run_id in rows]
            db.executemany("DELETE FROM events WHERE run_id = ?", ids)
            db.executemany("DELETE FROM deliveries WHERE run_id = ?", ids)
            return len(rows)

        deleted = 0
        while True:
            count = self._write(op)
            deleted += count
            if count < _PRUNE_BATCH:
                return deleted
            gevent.sleep(0)  # let requests run between batches

    # -- checkpoints and closing ---------------------------------------------------------

    # A passive checkpoint never starts the WAL over while writers keep coming:
    # it copies what was there when it began, and the next write finds more.
    # Under steady load the WAL grew without end: 400 MB after 20 s of the
    # gateway at ~200 runs/s, about 100 kB per run. So each round ends with a
    # RESTART checkpoint, which copies the little written meanwhile holding the
    # write lock, waits for reads under way and starts the WAL over; this
    # process's writers wait for it (cooperatively), or its busy handler, which
    # polls every few milliseconds, would lose the lock to them every time.
    def _checkpoints(self) -> None:
        while True:
            gevent.sleep(self.checkpoint_interval)
            try:
                self._in_pool("PASSIVE")
                self._writes_held = Event()
                try:
                    self._in_pool("RESTART")
                finally:
                    held, self._writes_held = self._writes_held, None
                    held.set()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.warning("run store %s: checkpoint failed", self.path, exc_info=True)

    def _in_pool(self, mode: str) -> None:
        self._checkpointing = gevent.get_hub().threadpool.spawn(self._checkpoint, mode)
        self._checkpointing.get(timeout=60)

    def _checkpoint(self, mode: str = "PASSIVE") -> None:
        """Copy committed WAL pages into the database file; in a pool thread (it fsyncs)."""
        if self._checkpoint_conn is None:
            self._checkpoint_conn = sqlite3.connect(
                self.path, timeout=_RESTART_WAIT, isolation_level=None, check_same_thread=False
            )
        self._checkpoint_conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()

    def close(self) -> None:
        """Stop the bus and the checkpoints and close this process's connections."""
        if self._closed:
            return
        self._closed = True
        if self._pid != os.getpid():
            self._bus.abandon()
            return
        self._background.kill()
        if self._checkpointing is not None and not self._checkpointing.ready():
            self._checkpointing.wait(timeout=5)  # its thread still uses its connection
        self._bus.close()
        for conn in (self._conn, self._checkpoint_conn):
            if conn is not None:
                conn.close()
        self._conn = self._checkpoint_conn = None


def _claimed(record: RunRecord, claim: Claim, now: float) -> RunRecord:
    return record.evolve(
        status=DISPATCHING,
        server=claim.server,
        owner=claim.owner,
        prompt_id=claim.prompt_id,
        client_id=claim.client_id,
        attempts=[*record.attempts, new_attempt(claim.prompt_id, claim.server, now)],
        updated_at=now,
    )


def _may_claim_new(db: sqlite3.Connection, record: RunRecord, claim: Claim) -> bool:
    """Whether `claim` would take this new run next: its server has room, no run is before it."""
    if claim.limit > 0:
        if db.execute(_COUNT_IN_FLIGHT, (claim.server,)).fetchone()[0] >= claim.limit:
            return False
    return db.execute(_QUEUED_FROM, (record.priority, time.time())).fetchone() is None


def _insert_events(db: sqlite3.Connection, run_id: str, events: list[NewEvent], at: float) -> None:
    if events:
        rows = [(run_id, RunEvent(0, kind, data, at).to_json()) for kind, data in events]
        db.executemany(_APPEND_EVENT, rows)


def _save_delivery(db: sqlite3.Connection, delivery: Delivery) -> None:
    db.execute(
        _SAVE_DELIVERY,
        (
            delivery.id,
            delivery.run_id,
            delivery.state,
            delivery.next_at,
            delivery.created_at,
            delivery.to_json(),
        ),
    )


def _rewrite(db: sqlite3.Connection, old: RunRecord, new: RunRecord) -> None:
    """Store `new` over `old`: the document, and the query columns that changed."""
    assignments = ["doc = ?"]
    params: list[Any] = [new.to_json()]
    for column in _COLUMNS:
        value = getattr(new, column)
        if value != getattr(old, column):
            assignments.append(f"{column} = ?")
            params.append(value)
    db.execute(f"UPDATE runs SET {', '.join(assignments)} WHERE seq = ?", (*params, old.seq))
