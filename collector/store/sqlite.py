"""The collector's store on SQLite: WAL, one writer thread, group commit.

Every write goes through one thread that owns the write connection. It takes
whatever writes are queued, runs them in one transaction (each inside its own
savepoint, so one failure cannot half-store another), commits with
``synchronous=FULL`` and only then tells the waiting coroutines. An ack sent
after ``await store.write_batch(...)`` therefore means "on disk".

Readers (summary, tests, reports) open their own connections; WAL lets them
read while the writer writes. The running collector opens its store
``exclusive``: a lock file beside the db (``collector/store/lock.py``) refuses a
second collector on the same store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import sys
import threading
import time
import urllib.parse
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf import json_format

from collector.attribution.model import AttributionResult
from collector.errors import CollectorError, StoreError
from collector.store.coverage import SCHEMA_STEP_3, DropLoss, insert_drops, merge_window
from collector.store.incidents import SCHEMA_STEP_6, SaveSummary, save_run
from collector.store.lock import StoreLock
from collector.store.places import SCHEMA_STEP_7
from collector.store.sla_tables import SCHEMA_STEP_4, ImportRecords, TableCount, write_import
from collector.store.windows import SCHEMA_STEP_5
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up

log = logging.getLogger(__name__)

T = TypeVar("T")


def _enum_names(enum: Any, prefix: str) -> dict[int, str]:
    return {number: name.removeprefix(prefix).lower() for name, number in enum.items()}


KIND_NAMES = _enum_names(pb.CheckKind, "CHECK_KIND_")
OUTCOME_NAMES = _enum_names(pb.Outcome, "OUTCOME_")
ERROR_CLASS_NAMES = _enum_names(pb.ErrorClass, "ERROR_CLASS_")


class BatchResult(Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"


def pack_samples(samples: Sequence[int]) -> bytes | None:
    if not samples:
        return None
    packed = array("q", samples)
    if sys.byteorder != "little":
        packed.byteswap()
    return packed.tobytes()


def unpack_samples(blob: bytes | None) -> list[int]:
    if not blob:
        return []
    values = array("q")
    values.frombytes(blob)
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()


def observation_row(
    agent_id: str, epoch: int, sequence: int, o: pb.Observation
) -> tuple[object, ...]:
    has_rtt = o.HasField("rtt")
    return (
        agent_id, epoch, sequence, o.check_id, KIND_NAMES[o.kind], o.target,
        o.start_unix_ns, o.duration_ns, OUTCOME_NAMES[o.outcome],
        ERROR_CLASS_NAMES[o.error_class], o.error_detail,
        o.packets_sent, o.packets_received,
        o.rtt.min_ns if has_rtt else None, o.rtt.mean_ns if has_rtt else None,
        o.rtt.max_ns if has_rtt else None, o.rtt.stddev_ns if has_rtt else None,
        pack_samples(o.rtt.samples_ns), detail_json(o),
    )  # fmt: skip


def detail_json(o: pb.Observation) -> str | None:
    """The typed detail (HTTP status, DNS answers, host findings ...) as JSON, for SQL."""
    kind = o.WhichOneof("detail")
    if kind is None:
        return None
    body = json_format.MessageToDict(getattr(o, kind), preserving_proto_field_name=True)
    return json.dumps({kind: body}, separators=(",", ":"))


_INSERT_OBSERVATION = """
INSERT INTO observations (agent_id, sequence_epoch, sequence, check_id, kind, target,
    start_ns, duration_ns, outcome, error_class, error_detail, packets_sent,
    packets_received, rtt_min_ns, rtt_mean_ns, rtt_max_ns, rtt_stddev_ns, rtt_samples,
    detail_json)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """Open the store; readers get a read-only connection."""
    try:
        if readonly:
            # Quoted: a path with ? or # would otherwise be read as URI syntax.
            uri = f"file:{urllib.parse.quote(str(path.absolute()))}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=10)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # an ack promises the batch is on disk
        conn.execute("PRAGMA busy_timeout=10000")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {path}: {exc}") from None
    except OSError as exc:
        raise StoreError(
            f"cannot create the store's folder {path.parent}: {exc.strerror}"
        ) from None
    return conn


# Each step takes the store from version N-1 to N; schema.sql is version 1.
# Steps only add (tables, nullable columns), so old rows stay valid as they are; step 5
# rebuilds one table, copying every row, inside the step's transaction.
MIGRATIONS: dict[int, str] = {
    1: "schema.sql",
    2: "ALTER TABLE observations ADD COLUMN detail_json TEXT;",
    3: SCHEMA_STEP_3,  # spool_drops, coverage, config_status
    4: SCHEMA_STEP_4,  # SLA inputs; observations.cause, .interval_ns
    5: SCHEMA_STEP_5,  # maintenance windows: id, scope, source, cancelled; overrides' source
    6: SCHEMA_STEP_6,  # attribution's incidents, every version
    7: SCHEMA_STEP_7,  # where the inventory's service items run (maintenance scopes)
}
SCHEMA_VERSION = max(MIGRATIONS)


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {path} has schema version {version}; this collector knows {SCHEMA_VERSION}"
        )
    for step in range(version + 1, SCHEMA_VERSION + 1):
        script = MIGRATIONS[step]
        if script.endswith(".sql"):
            script = resources.files("collector.store").joinpath(script).read_text()
        # One transaction per step: a failed step leaves the store at the previous version.
        conn.executescript(f"BEGIN; {script}; PRAGMA user_version={step}; COMMIT;")


@contextmanager
def _savepoint(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("SAVEPOINT write")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK TO write")
        conn.execute("RELEASE write")
        raise
    conn.execute("RELEASE write")


class _Write:
    __slots__ = ("action", "future", "loop")

    def __init__(
        self, action: Callable[[sqlite3.Connection], Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.action = action
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()


class Store:
    """Async front of the SQLite store; all writes are serialised on one thread."""

    def __init__(self, path: Path, exclusive: bool = False) -> None:
        """``exclusive``: hold the store's lock until ``close`` (the running collector),
        so that a second one on the same store is refused before it writes anything.
        Other writers (import, maintenance, override) and readers leave it out."""
        self.path = path
        self._lock = StoreLock.acquire(path) if exclusive else None
        try:
            self._conn = connect(path)
            migrate(self._conn, path)
        except BaseException:
            self._release_lock()
            raise
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._writer, name="store-writer", daemon=True)
        self._thread.start()
        self.commit_seconds: Callable[[float], None] = lambda _s: None
        # The earliest observation start stored since attribution last asked
        # (take_earliest_stored): late data that a run must reach back to.
        self._earliest_stored_ns: int | None = None

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._conn.close()
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()

    async def _submit(self, action: Callable[[sqlite3.Connection], T]) -> T:
        write = _Write(action, asyncio.get_running_loop())
        self._queue.put(write)
        result: T = await write.future
        return result

    # -- the writer thread ------------------------------------------------

    def _writer(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while True:  # group commit: take everything already queued
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                group.append(item)
            self._run_group(group)

    def _run_group(self, group: list[_Write]) -> None:
        started = time.perf_counter()
        outcomes: list[tuple[_Write, Any, BaseException | None]] = []
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for write in group:
                try:
                    with _savepoint(self._conn):
                        outcomes.append((write, write.action(self._conn), None))
                except CollectorError as exc:  # refused on purpose (ConfigError ...): as is
                    outcomes.append((write, None, exc))
                except Exception as exc:  # the writer thread must outlive any one write
                    outcomes.append((write, None, StoreError(str(exc))))
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            log.error("store commit failed: %s", exc)
            outcomes = [(w, None, StoreError(f"commit failed: {exc}")) for w in group]
        self.commit_seconds(time.perf_counter() - started)
        for write, value, error in outcomes:
            write.loop.call_soon_threadsafe(_resolve, write.future, value, error)

    # -- writes -----------------------------------------------------------

    async def record_agent(self, hello: up.Hello, now_ns: int) -> int:
        """Upsert the agent; return the highest stored sequence of its epoch (0 if none)."""
        labels = json.dumps(dict(sorted(hello.labels.items())))

        def action(conn: sqlite3.Connection) -> int:
            conn.execute(
                """INSERT INTO agents VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (agent_id) DO UPDATE SET last_seen_ns=excluded.last_seen_ns,
                   software_version=excluded.software_version, boot_id=excluded.boot_id,
                   hostname=excluded.hostname, labels_json=excluded.labels_json""",
                (
                    hello.agent_id,
                    now_ns,
                    now_ns,
                    hello.software_version,
                    hello.boot_id,
                    hello.hostname,
                    labels,
                ),
            )
            row = conn.execute(
                "SELECT max(sequence) FROM batches WHERE agent_id=? AND sequence_epoch=?",
                (hello.agent_id, hello.sequence_epoch),
            ).fetchone()
            return int(row[0] or 0)

        return await self._submit(action)

    async def write_batch(
        self, agent_id: str, epoch: int, batch: up.ObservationBatch, now_ns: int
    ) -> tuple[BatchResult, list[DropLoss]]:
        """Store the batch (or find it stored); the loss its drop reports add."""
        rows = [observation_row(agent_id, epoch, batch.sequence, o) for o in batch.observations]

        def action(conn: sqlite3.Connection) -> tuple[BatchResult, list[DropLoss]]:
            try:
                conn.execute(
                    "INSERT INTO batches VALUES (?, ?, ?, ?, ?)",
                    (agent_id, epoch, batch.sequence, now_ns, len(rows)),
                )
            except sqlite3.IntegrityError:
                return BatchResult.DUPLICATE, []
            conn.executemany(_INSERT_OBSERVATION, rows)
            # Same savepoint as the batch row: drops and coverage are stored with the
            # batch or not at all, and a duplicate adds nothing.
            losses = insert_drops(conn, agent_id, epoch, batch, now_ns)
            merge_window(conn, agent_id, batch.window_start_unix_ns, batch.window_end_unix_ns)
            return BatchResult.STORED, losses

        result = await self._submit(action)
        if result[0] is BatchResult.STORED and rows:
            self._note_stored(min(o.start_unix_ns for o in batch.observations))
        return result

    def _note_stored(self, start_ns: int) -> None:
        # On the event loop's thread, like take_earliest_stored: no lock needed.
        if self._earliest_stored_ns is None or start_ns < self._earliest_stored_ns:
            self._earliest_stored_ns = start_ns

    def take_earliest_stored(self) -> int | None:
        """The earliest start of the observations stored since the last call (None:
        nothing stored since), and forget it."""
        earliest, self._earliest_stored_ns = self._earliest_stored_ns, None
        return earliest

    async def write_config_status(
        self, agent_id: str, status: up.ConfigStatus, now_ns: int
    ) -> None:
        row = (agent_id, status.version, int(status.accepted), status.reason, now_ns)

        def action(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO config_status VALUES (?, ?, ?, ?, ?)", row)

        await self._submit(action)

    async def write_heartbeat(self, agent_id: str, heartbeat: up.Heartbeat, now_ns: int) -> None:
        h = heartbeat.host
        row = (agent_id, now_ns, heartbeat.sent_unix_ns, h.cpu_ratio, h.memory_used_ratio,
               h.load1, h.boot_time_unix, h.agent_rss_bytes, h.agent_cpu_seconds,
               h.checks_configured, h.rounds_skipped)  # fmt: skip

        def action(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO heartbeats VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            conn.execute("UPDATE agents SET last_seen_ns=? WHERE agent_id=?", (now_ns, agent_id))

        await self._submit(action)

    async def write(self, action: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``action`` on the writer in a savepoint of its own: all of its writes are
        stored, or (when it raises) none; its result once committed. A CollectorError
        it raises reaches the caller as it is, anything else as a StoreError."""
        return await self._submit(action)

    async def import_records(self, records: ImportRecords, now_ns: int) -> dict[str, TableCount]:
        """Store an import file's records in one savepoint: all of them or, on failure, none.

        Per record type, how many the file gave and how many the store lacked.
        """
        return await self._submit(lambda conn: write_import(conn, records, now_ns))

    async def save_attribution(
        self, result: AttributionResult, now_ns: int | None = None
    ) -> SaveSummary:
        """Store one attribution run's incidents as versions (collector/store/incidents.py),
        all in one savepoint."""
        stamp = time.time_ns() if now_ns is None else now_ns
        return await self._submit(lambda conn: save_run(conn, result, stamp))


def _resolve(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
