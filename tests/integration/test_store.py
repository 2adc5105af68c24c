"""The SQLite store: old stores are upgraded in place, newer ones refused; a batch's
drops and coverage are stored with it or not at all."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from importlib import resources
from pathlib import Path

import pytest

from collector.errors import StoreError
from collector.store.coverage import DropLoss, coverage, last_config_status, spool_drops
from collector.store.sqlite import MIGRATIONS, SCHEMA_VERSION, BatchResult, Store
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up

NOW = time.time_ns()
SECOND = 10**9


def _version_1_store(path: Path) -> None:
    schema = resources.files("collector.store").joinpath("schema.sql").read_text()
    with sqlite3.connect(path) as conn:
        conn.executescript(f"BEGIN; {schema}; PRAGMA user_version=1; COMMIT;")
        conn.execute(
            "INSERT INTO observations (agent_id, sequence_epoch, sequence, check_id, kind, target,"
            " start_ns, duration_ns, outcome, error_class, error_detail, packets_sent,"
            " packets_received) VALUES ('a', 1, 1, 'c', 'icmp', 't', 5, 1, 'ok', 'none', '', 3, 3)"
        )


def test_version_1_store_is_upgraded_and_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _version_1_store(db)
    Store(db).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        rows = conn.execute("SELECT check_id, packets_sent, detail_json FROM observations")
        assert rows.fetchall() == [("c", 3, None)]


def test_a_store_from_a_newer_collector_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}"):
        Store(db)


def _version_2_store(path: Path) -> None:
    _version_1_store(path)
    with sqlite3.connect(path) as conn:
        conn.executescript(f"BEGIN; {MIGRATIONS[2]}; PRAGMA user_version=2; COMMIT;")
        conn.execute("INSERT INTO batches VALUES ('a', 1, 1, 5, 1)")


def windowed_batch(
    sequence: int, start: int, end: int, *drops: up.SpoolDrop
) -> up.ObservationBatch:
    batch = up.ObservationBatch(
        sequence=sequence, window_start_unix_ns=start, window_end_unix_ns=end
    )
    batch.observations.add(
        check_id="c", kind=pb.CHECK_KIND_TCP, target="t:1", start_unix_ns=start,
        outcome=pb.OUTCOME_OK, packets_sent=1, packets_received=1,
    )  # fmt: skip
    batch.spool_drops.extend(drops)
    return batch


def size_drop(first: int, last: int, observations: int = 7) -> up.SpoolDrop:
    return up.SpoolDrop(
        reason=up.SpoolDrop.REASON_SIZE, dropped_unix_ns=NOW, first_sequence=first,
        last_sequence=last, batches=last - first + 1, observations=observations,
        window_start_unix_ns=NOW - 9 * SECOND, window_end_unix_ns=NOW - 5 * SECOND,
    )  # fmt: skip


def test_version_2_store_gains_coverage_drops_and_config_status(tmp_path: Path) -> None:
    db = tmp_path / "v2.db"
    _version_2_store(db)
    store = Store(db)

    async def write() -> BatchResult:
        batch = windowed_batch(2, NOW - 4 * SECOND, NOW, size_drop(1, 1))
        return (await store.write_batch("a", 1, batch, NOW))[0]

    try:
        # The old batch 1 is still the dedupe key; the new batch stores drops and coverage.
        assert asyncio.run(write()) is BatchResult.STORED
    finally:
        store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute(
            "SELECT check_id, sequence FROM observations ORDER BY id"
        ).fetchall() == [
            ("c", 1),
            ("c", 2),
        ]
        assert coverage(conn, "a", 0, NOW) == [(NOW - 4 * SECOND, NOW)]
        assert [
            (d.reason, d.first_sequence, d.reported_in_sequence) for d in spool_drops(conn)
        ] == [("size", 1, 2)]


def test_drops_and_windows_are_stored_once_and_with_their_batch(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = Store(db)

    first = windowed_batch(3, NOW - 3 * SECOND, NOW - 2 * SECOND, size_drop(1, 2))
    # Batch 5 arrives before batch 4 (a replay after a reconnect); 4 bridges 3 and 5.
    later = [
        windowed_batch(5, NOW - SECOND, NOW),
        windowed_batch(4, NOW - 2 * SECOND, NOW - SECOND),
    ]

    async def scenario() -> list[BatchResult]:
        # Resent after a reconnect, batch 3 is a duplicate: its drop must not be stored twice.
        results = [(await store.write_batch("a", 1, b, NOW))[0] for b in (first, first, *later)]
        await store.write_config_status("a", up.ConfigStatus(version="v1", accepted=True), NOW)
        await store.write_config_status(
            "a", up.ConfigStatus(version="v2", accepted=False, reason="checks[0]: bad"), NOW + 1
        )
        return results

    try:
        results = asyncio.run(scenario())
    finally:
        store.close()
    assert results == [BatchResult.STORED, BatchResult.DUPLICATE, BatchResult.STORED,
                       BatchResult.STORED]  # fmt: skip
    with sqlite3.connect(db) as conn:
        assert [
            (d.first_sequence, d.last_sequence, d.observations) for d in spool_drops(conn, "a")
        ] == [(1, 2, 7)]
        assert spool_drops(conn, "b") == []
        assert conn.execute("SELECT start_ns, end_ns FROM coverage").fetchall() == [
            (NOW - 3 * SECOND, NOW)
        ]
        last = last_config_status(conn, "a")
        assert last is not None
        assert (last.version, last.accepted, last.reason) == ("v2", False, "checks[0]: bad")
        assert conn.execute("SELECT count(*) FROM config_status").fetchone()[0] == 2


def test_a_failing_write_leaves_nothing_of_the_batch(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    Store(db).close()
    with sqlite3.connect(db) as conn:  # the last step of write_batch fails
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON coverage BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
    store = Store(db)
    batch = windowed_batch(2, NOW - SECOND, NOW, size_drop(1, 1))
    try:
        with pytest.raises(StoreError, match="no"):
            asyncio.run(store.write_batch("a", 1, batch, NOW))
    finally:
        store.close()
    with sqlite3.connect(db) as conn:
        for table in ("batches", "observations", "spool_drops", "coverage"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


def test_a_drop_counts_only_what_the_collector_does_not_have(tmp_path: Path) -> None:
    """Batch 2 was stored but its ack lost, then the agent dropped batches 1-3 (7
    observations); the report of 1-3 was carried into a wider one of 1-6 (19)."""
    store = Store(tmp_path / "c.db")

    async def scenario() -> list[list[DropLoss]]:
        await store.write_batch("a", 1, windowed_batch(2, NOW - 2 * SECOND, NOW - SECOND), NOW)
        first = windowed_batch(4, NOW - SECOND, NOW, size_drop(1, 3, observations=7))
        wider = windowed_batch(7, NOW - SECOND, NOW, size_drop(1, 6, observations=19))
        return [(await store.write_batch("a", 1, b, NOW))[1] for b in (first, wider)]

    try:
        first, wider = asyncio.run(scenario())
    finally:
        store.close()
    # Batch 2 (1 observation) is stored: batches 1 and 3, 6 observations lost. The
    # wider report adds 1-6 minus the stored batches 2 and 4 (the first report's
    # carrier, stored before its ack was lost) minus what the first report counted:
    # batches 5 and 6, 19 - 2 - 6 = 11 observations.
    assert first == [DropLoss("size", 2, 6)]
    assert wider == [DropLoss("size", 2, 11)]
    with sqlite3.connect(tmp_path / "c.db") as conn:
        lost = sum(d.observations_lost for d in spool_drops(conn, "a"))
    assert lost == 6 + 11
