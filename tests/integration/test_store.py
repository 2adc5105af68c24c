"""The SQLite store's schema steps: old stores are upgraded in place, newer ones refused."""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path

import pytest

from collector.errors import StoreError
from collector.store.sqlite import SCHEMA_VERSION, Store


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
