"""Where each service item of the inventory runs (node, a VM's hypervisor, segment,
site), kept in the store so that reports, claims and the SLA metrics resolve node,
segment and site maintenance windows without the inventory at hand.

The collector rewrites the table whenever it loads an inventory (start and every
accepted reload), inside one transaction on the store's writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from collector.sla.model import ItemPlace

__all__ = ["SCHEMA_STEP_7", "stored_place", "sync_item_places"]

# Store version 7: additive only, see MIGRATIONS in sqlite.py.
SCHEMA_STEP_7 = """
CREATE TABLE item_places (
    item_id TEXT PRIMARY KEY,
    nodes   TEXT NOT NULL,  -- its node, then a VM's hypervisor: ids joined by spaces
    segment TEXT,
    site    TEXT
) WITHOUT ROWID
"""


def sync_item_places(conn: sqlite3.Connection, places: Sequence[ItemPlace]) -> int:
    """Make the table exactly ``places``; how many rows changed."""
    wanted = {p.item_id: (" ".join(p.nodes), p.segment, p.site) for p in places}
    stored = {row[0]: tuple(row[1:]) for row in conn.execute("SELECT * FROM item_places")}
    gone = [item for item in stored if item not in wanted]
    changed = [(item, *row) for item, row in wanted.items() if stored.get(item) != row]
    conn.executemany("DELETE FROM item_places WHERE item_id=?", [(item,) for item in gone])
    conn.executemany("INSERT OR REPLACE INTO item_places VALUES (?, ?, ?, ?)", changed)
    return len(gone) + len(changed)


def stored_place(conn: sqlite3.Connection, item_id: str) -> ItemPlace | None:
    """The item's place as the collector's inventory last said (None: not known, or a
    store older than version 7)."""
    try:
        row = conn.execute(
            "SELECT nodes, segment, site FROM item_places WHERE item_id=?", (item_id,)
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    if row is None:
        return None
    return ItemPlace(item_id, tuple(row[0].split()), row[1], row[2])
