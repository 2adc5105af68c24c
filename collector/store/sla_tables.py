"""The SLA engine's inputs in the store: service items, maintenance, tickets, overrides,
and observations imported from elsewhere (``slawatch-collector import``).

Writes run on the store's writer thread (``Store.import_records``), all of one
import in one savepoint: a failure keeps nothing of it. Reads for the engine are
in ``collector.sla.evidence``.

Imported observations go into ``observations`` beside the agents' ones, with
``sequence_epoch = 0`` and ``sequence = 0``: agents' epochs start at 1 (the
ingest rejects 0), so epoch 0 marks a row as imported and needs no batch row.
An import is idempotent: every record has a natural key, and importing it again
replaces the stored record instead of adding one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from collector.sla.model import MaintenanceWindow, Override, ServiceItem, Ticket
from collector.store.windows import upsert_imported_windows

# Store version 4: additive only, see MIGRATIONS in sqlite.py.
SCHEMA_STEP_4 = """
ALTER TABLE observations ADD COLUMN cause TEXT;         -- explicit cause of the round (Cause)
ALTER TABLE observations ADD COLUMN interval_ns INTEGER; -- the check's interval, when known
-- The dedupe key of imported rows (epoch 0), enforced by the database; partial, so
-- it holds only imported rows and costs the agents' rows nothing.
CREATE UNIQUE INDEX observations_imported
    ON observations (agent_id, check_id, start_ns) WHERE sequence_epoch = 0;
CREATE TABLE service_items (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    policy        TEXT NOT NULL,
    monthly_fee   TEXT NOT NULL,    -- a decimal as text: money is exact
    currency      TEXT NOT NULL,    -- ISO 4217, e.g. USD
    prior_invoice TEXT,             -- a decimal as text, or NULL
    good_standing INTEGER NOT NULL, -- 0 or 1
    imported_ns   INTEGER NOT NULL
);
-- The item's checks: role 'availability' (their failures make the item
-- unavailable) or 'loss' (their packet loss is the item's Excess Packet Loss).
CREATE TABLE service_item_checks (
    item_id  TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    check_id TEXT NOT NULL,
    role     TEXT NOT NULL DEFAULT 'availability',
    PRIMARY KEY (item_id, role, agent_id, check_id)
) WITHOUT ROWID;
CREATE TABLE maintenance_windows (
    item_id      TEXT,              -- NULL: every item
    start_ns     INTEGER NOT NULL,
    end_ns       INTEGER NOT NULL,
    announced_ns INTEGER NOT NULL,
    kind         TEXT NOT NULL,     -- planned, emergency, patch (version 5 rebuilds it)
    note         TEXT NOT NULL
);
-- NULL is never equal to NULL in a unique index, so "every item" is keyed as ''
-- (no item id is empty).
CREATE UNIQUE INDEX maintenance_windows_key
    ON maintenance_windows (ifnull(item_id, ''), start_ns, end_ns);
CREATE TABLE tickets (
    item_id          TEXT NOT NULL,
    opened_ns        INTEGER NOT NULL,
    reference        TEXT NOT NULL,
    credit_requested INTEGER NOT NULL,
    PRIMARY KEY (item_id, opened_ns)
);
CREATE TABLE overrides (
    item_id    TEXT NOT NULL,
    start_ns   INTEGER NOT NULL,
    end_ns     INTEGER NOT NULL,
    cause      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    PRIMARY KEY (item_id, start_ns, end_ns)
)
"""


@dataclass(frozen=True, slots=True)
class ImportedObservation:
    """One round of one check from elsewhere: what the store keeps of it."""

    agent_id: str
    check_id: str
    start_ns: int
    outcome: str  # a name of OUTCOME_NAMES
    kind: str = "http"  # a name of KIND_NAMES
    target: str = ""
    duration_ns: int = 0
    interval_ns: int | None = None
    cause: str | None = None  # a Cause value
    packets_sent: int = 0
    packets_received: int = 0


@dataclass(frozen=True, slots=True)
class ImportRecords:
    """Everything one import file holds, validated."""

    items: tuple[ServiceItem, ...] = ()
    observations: tuple[ImportedObservation, ...] = ()
    maintenance: tuple[MaintenanceWindow, ...] = ()
    tickets: tuple[Ticket, ...] = ()
    overrides: tuple[Override, ...] = ()


@dataclass(frozen=True, slots=True)
class TableCount:
    """Records of one type in the file, and how many of them the store lacked."""

    given: int
    new: int


# Per record type, the rows it counts: imported observations only, never the agents'.
_COUNTED = {
    "service items": "SELECT count(*) FROM service_items",
    "observations": "SELECT count(*) FROM observations WHERE sequence_epoch = 0",
    "maintenance windows": "SELECT count(*) FROM maintenance_windows",
    "tickets": "SELECT count(*) FROM tickets",
    "overrides": "SELECT count(*) FROM overrides",
}

# On a second import of the same key the newer record wins: a corrected file fixes
# what the first one stored.
_UPSERT_ITEM = """
INSERT INTO service_items VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET name=excluded.name, policy=excluded.policy,
    monthly_fee=excluded.monthly_fee, currency=excluded.currency,
    prior_invoice=excluded.prior_invoice, good_standing=excluded.good_standing,
    imported_ns=excluded.imported_ns
"""
# An imported round has no error class or RTT: the other source did not say.
_UPSERT_OBSERVATION = """
INSERT INTO observations (agent_id, sequence_epoch, sequence, check_id, kind, target,
    start_ns, duration_ns, outcome, error_class, error_detail, packets_sent,
    packets_received, cause, interval_ns)
VALUES (?, 0, 0, ?, ?, ?, ?, ?, ?, 'none', '', ?, ?, ?, ?)
ON CONFLICT (agent_id, check_id, start_ns) WHERE sequence_epoch = 0 DO UPDATE SET
    kind=excluded.kind, target=excluded.target, duration_ns=excluded.duration_ns,
    outcome=excluded.outcome, cause=excluded.cause, interval_ns=excluded.interval_ns,
    packets_sent=excluded.packets_sent, packets_received=excluded.packets_received
"""
_UPSERT_TICKET = """
INSERT INTO tickets VALUES (?, ?, ?, ?)
ON CONFLICT (item_id, opened_ns) DO UPDATE SET
    reference=excluded.reference, credit_requested=excluded.credit_requested
"""
_UPSERT_OVERRIDE = """
INSERT INTO overrides (item_id, start_ns, end_ns, cause, reason, created_ns)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (item_id, start_ns, end_ns) DO UPDATE SET
    cause=excluded.cause, reason=excluded.reason, created_ns=excluded.created_ns,
    source=excluded.source, created_by=excluded.created_by
"""


def write_import(
    conn: sqlite3.Connection, records: ImportRecords, now_ns: int
) -> dict[str, TableCount]:
    """Store ``records`` (inside the caller's transaction); per type, given and new."""
    before = _counts(conn)
    for item in records.items:
        _replace_item(conn, item, now_ns)
    conn.executemany(_UPSERT_OBSERVATION, [_observation_row(o) for o in records.observations])
    upsert_imported_windows(conn, records.maintenance, now_ns)
    conn.executemany(
        _UPSERT_TICKET,
        [(t.item_id, t.opened_ns, t.reference, int(t.credit_requested)) for t in records.tickets],
    )
    conn.executemany(
        _UPSERT_OVERRIDE,
        [(o.item_id, o.start_ns, o.end_ns, o.cause.value, o.reason, now_ns)
         for o in records.overrides],
    )  # fmt: skip
    after = _counts(conn)
    given = (records.items, records.observations, records.maintenance, records.tickets,
             records.overrides)  # fmt: skip
    return {
        name: TableCount(len(rows), after[name] - before[name])
        for name, rows in zip(_COUNTED, given, strict=True)
    }


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {name: int(conn.execute(query).fetchone()[0]) for name, query in _COUNTED.items()}


def _replace_item(conn: sqlite3.Connection, item: ServiceItem, now_ns: int) -> None:
    """The item as given, with exactly its checks: a re-import drops checks it no longer names."""
    prior = None if item.prior_invoice is None else str(item.prior_invoice)
    conn.execute(
        _UPSERT_ITEM,
        (item.id, item.name, item.policy, str(item.monthly_fee), item.currency, prior,
         int(item.good_standing), now_ns),
    )  # fmt: skip
    conn.execute("DELETE FROM service_item_checks WHERE item_id=?", (item.id,))
    conn.executemany(
        "INSERT INTO service_item_checks VALUES (?, ?, ?, ?)",
        [(item.id, c.agent_id, c.check_id, "availability") for c in item.checks]
        + [(item.id, c.agent_id, c.check_id, "loss") for c in item.loss_checks],
    )


def _observation_row(o: ImportedObservation) -> tuple[object, ...]:
    return (o.agent_id, o.check_id, o.kind, o.target, o.start_ns, o.duration_ns, o.outcome,
            o.packets_sent, o.packets_received, o.cause, o.interval_ns)  # fmt: skip


def service_item_ids(conn: sqlite3.Connection) -> set[str]:
    """The ids of the stored service items (none in a store older than version 4)."""
    try:
        rows = conn.execute("SELECT id FROM service_items").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # the store predates step 4: no items yet
            return set()
        raise
    return {row[0] for row in rows}
