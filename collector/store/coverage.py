"""Coverage and spool drops: which time each agent has data for, and what it lost.

Every batch names the window ``[start, end)`` during which its agent ran and
whose finished observations it carries. The store keeps, per agent, the union
of those windows as merged, disjoint, non-touching intervals (table
``coverage``), so "had we data at 03:12?" is one indexed lookup however many
batches there were. Spool drops (batches the agent discarded unsent) are kept
row by row in ``spool_drops``: they explain a gap.

Writes run on the store's writer thread inside the batch's savepoint; reads
take any connection (the summary's read-only one, or a test's).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from slawatch.v1 import uplink_pb2 as up

Interval = tuple[int, int]

REASON_NAMES = {
    number: name.removeprefix("REASON_").lower() for name, number in up.SpoolDrop.Reason.items()
}

# Store version 3: additive only, see MIGRATIONS in sqlite.py.
SCHEMA_STEP_3 = """
CREATE TABLE spool_drops (
    agent_id             TEXT NOT NULL,
    sequence_epoch       INTEGER NOT NULL,
    reported_in_sequence INTEGER NOT NULL,  -- the batch that carried the report
    reason               TEXT NOT NULL,     -- size, age
    dropped_ns           INTEGER NOT NULL,
    first_sequence       INTEGER NOT NULL,
    last_sequence        INTEGER NOT NULL,
    batches              INTEGER NOT NULL,
    observations         INTEGER NOT NULL,
    -- Of those, observations the collector knew of already: in batches it had
    -- stored (sent before the drop, the ack lost), or in an earlier report of
    -- a range inside this one (carried forward). The loss is the difference.
    observations_accounted INTEGER NOT NULL,
    first_start_ns       INTEGER NOT NULL,
    last_start_ns        INTEGER NOT NULL,
    window_start_ns      INTEGER NOT NULL,
    window_end_ns        INTEGER NOT NULL,
    received_ns          INTEGER NOT NULL
);
CREATE INDEX spool_drops_by_agent ON spool_drops (agent_id, dropped_ns);
-- Merged [start_ns, end_ns) per agent: disjoint, and no two touch.
CREATE TABLE coverage (
    agent_id TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns   INTEGER NOT NULL,
    PRIMARY KEY (agent_id, start_ns)
) WITHOUT ROWID;
CREATE TABLE config_status (
    agent_id    TEXT NOT NULL,
    version     TEXT NOT NULL,
    accepted    INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    received_ns INTEGER NOT NULL
);
CREATE INDEX config_status_by_agent ON config_status (agent_id, received_ns);
"""


def merge_window(conn: sqlite3.Connection, agent_id: str, start_ns: int, end_ns: int) -> None:
    """Add ``[start_ns, end_ns)`` to the agent's coverage, merging what it touches.

    Batches arrive in any order after a reconnect, so the window may extend an
    interval on either side, fall inside one, or bridge several.
    """
    if start_ns >= end_ns:
        return  # empty: covers nothing (and a window of 0, 0 is an old agent's)
    # Intervals are disjoint, so only the last one starting before the window can
    # reach into it; everything else it touches starts within [start_ns, end_ns].
    before = conn.execute(
        "SELECT start_ns, end_ns FROM coverage WHERE agent_id=? AND start_ns<? "
        "ORDER BY start_ns DESC LIMIT 1",
        (agent_id, start_ns),
    ).fetchone()
    low = before[0] if before is not None and before[1] >= start_ns else start_ns
    touched = conn.execute(
        "SELECT start_ns, end_ns FROM coverage WHERE agent_id=? AND start_ns BETWEEN ? AND ?",
        (agent_id, low, end_ns),
    ).fetchall()
    merged_start = min([start_ns, *(s for s, _ in touched)])
    merged_end = max([end_ns, *(e for _, e in touched)])
    conn.execute(
        "DELETE FROM coverage WHERE agent_id=? AND start_ns BETWEEN ? AND ?",
        (agent_id, low, end_ns),
    )
    conn.execute("INSERT INTO coverage VALUES (?, ?, ?)", (agent_id, merged_start, merged_end))


@dataclass(frozen=True, slots=True)
class DropLoss:
    """What one stored drop report adds to what is known lost."""

    reason: str
    batches: int
    observations: int


def insert_drops(
    conn: sqlite3.Connection,
    agent_id: str,
    epoch: int,
    batch: up.ObservationBatch,
    now_ns: int,
) -> list[DropLoss]:
    """Store the batch's drop reports; return what each adds to the known loss."""
    losses = []
    for d in batch.spool_drops:
        batches, observations = _accounted(conn, agent_id, epoch, d)
        conn.execute(
            "INSERT INTO spool_drops VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (agent_id, epoch, batch.sequence, REASON_NAMES[d.reason], d.dropped_unix_ns,
             d.first_sequence, d.last_sequence, d.batches, d.observations, observations,
             d.first_start_unix_ns, d.last_start_unix_ns, d.window_start_unix_ns,
             d.window_end_unix_ns, now_ns),
        )  # fmt: skip
        losses.append(
            DropLoss(REASON_NAMES[d.reason], max(0, d.batches - batches),
                     max(0, d.observations - observations))
        )  # fmt: skip
    return losses


def _accounted(
    conn: sqlite3.Connection, agent_id: str, epoch: int, d: up.SpoolDrop
) -> tuple[int, int]:
    """(batches, observations) of the dropped range the collector knows of anyway:
    stored batches (their ack was lost) and the losses of earlier reports inside the
    range (a report carried forward when the batch carrying it was dropped after
    being sent)."""
    batches, observations = _stored_in(conn, agent_id, epoch, d.first_sequence, d.last_sequence)
    earlier = conn.execute(
        "SELECT first_sequence, last_sequence, batches, observations - observations_accounted"
        " FROM spool_drops WHERE agent_id=? AND sequence_epoch=? AND first_sequence>=? "
        "AND last_sequence<=?",
        (agent_id, epoch, d.first_sequence, d.last_sequence),
    ).fetchall()
    for first, last, reported_batches, lost_observations in earlier:
        batches += reported_batches - _stored_in(conn, agent_id, epoch, first, last)[0]
        observations += lost_observations
    return batches, observations


def _stored_in(
    conn: sqlite3.Connection, agent_id: str, epoch: int, first: int, last: int
) -> tuple[int, int]:
    row = conn.execute(
        "SELECT count(*), coalesce(sum(observations), 0) FROM batches "
        "WHERE agent_id=? AND sequence_epoch=? AND sequence BETWEEN ? AND ?",
        (agent_id, epoch, first, last),
    ).fetchone()
    return int(row[0]), int(row[1])


def coverage(conn: sqlite3.Connection, agent_id: str, start_ns: int, end_ns: int) -> list[Interval]:
    """The agent's covered intervals within ``[start_ns, end_ns)``, clipped to it, in order."""
    rows = conn.execute(
        "SELECT max(start_ns, ?), min(end_ns, ?) FROM coverage "
        "WHERE agent_id=? AND start_ns<? AND end_ns>? ORDER BY start_ns",
        (start_ns, end_ns, agent_id, end_ns, start_ns),
    ).fetchall()
    return [(int(s), int(e)) for s, e in rows]


def gaps(intervals: Sequence[Interval], start_ns: int, end_ns: int) -> list[Interval]:
    """What ``intervals`` (sorted, disjoint, within the span) leave of ``[start_ns, end_ns)``."""
    holes: list[Interval] = []
    cursor = start_ns
    for s, e in intervals:
        if s > cursor:
            holes.append((cursor, s))
        cursor = max(cursor, e)
    if cursor < end_ns:
        holes.append((cursor, end_ns))
    return holes


@dataclass(frozen=True, slots=True)
class DropRecord:
    agent_id: str
    sequence_epoch: int
    reported_in_sequence: int
    reason: str
    dropped_ns: int
    first_sequence: int
    last_sequence: int
    batches: int
    observations: int
    observations_accounted: int
    first_start_ns: int
    last_start_ns: int
    window_start_ns: int
    window_end_ns: int
    received_ns: int

    @property
    def observations_lost(self) -> int:
        return self.observations - self.observations_accounted


def spool_drops(
    conn: sqlite3.Connection,
    agent_id: str | None = None,
    since_ns: int = 0,
    until_ns: int = 2**63 - 1,
) -> list[DropRecord]:
    """Drops the agents reported (one agent, or all), dropped within ``[since_ns, until_ns)``."""
    rows = conn.execute(
        "SELECT * FROM spool_drops WHERE (?1 IS NULL OR agent_id=?1) "
        "AND dropped_ns>=?2 AND dropped_ns<?3 ORDER BY agent_id, dropped_ns, first_sequence",
        (agent_id, since_ns, until_ns),
    ).fetchall()
    return [DropRecord(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class ConfigStatusRecord:
    agent_id: str
    version: str
    accepted: bool
    reason: str
    received_ns: int


def last_config_status(conn: sqlite3.Connection, agent_id: str) -> ConfigStatusRecord | None:
    row = conn.execute(
        "SELECT agent_id, version, accepted, reason, received_ns FROM config_status "
        "WHERE agent_id=? ORDER BY received_ns DESC, rowid DESC LIMIT 1",
        (agent_id,),
    ).fetchone()
    if row is None:
        return None
    return ConfigStatusRecord(row[0], row[1], bool(row[2]), row[3], row[4])
