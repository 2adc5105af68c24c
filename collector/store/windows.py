"""Maintenance windows and overrides in the store: what operators enter by hand
(`slawatch-collector maintenance`, `override`), what imports bring and what the
inventory declares.

Every function here runs inside the caller's transaction (the store's writer,
``Store.write``), so a command's checks and its write see the same rows: two
operators cancelling one window cannot both succeed.

A window's key is its source, scope, scope id, start and end among windows not
cancelled: each source owns its rows (an inventory reload never touches a
window an import or an operator made), and a cancelled window frees its key
for a new one while staying listed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from collector.errors import ConfigError
from collector.sla.model import (
    Cause,
    MaintenanceKind,
    MaintenanceScope,
    MaintenanceWindow,
    Override,
    WindowSource,
)

__all__ = [
    "SCHEMA_STEP_5",
    "InventorySync",
    "StoredOverride",
    "add_override",
    "add_window",
    "cancel_window",
    "list_overrides",
    "list_windows",
    "remove_override",
    "sync_inventory_windows",
    "upsert_imported_windows",
]

# Store version 5: maintenance_windows rebuilt (an id, a scope, a source, cancellation;
# the kind 'planned' renamed 'scheduled'), overrides gain their source and author.
# The rebuild runs in the step's one transaction (migrate): all of it or none.
SCHEMA_STEP_5 = """
CREATE TABLE maintenance_windows_v5 (
    id           INTEGER PRIMARY KEY,  -- stable (`maintenance cancel ID`): rows are never
                                       -- deleted, so an id is never reused
    scope        TEXT NOT NULL,        -- item, node, segment, site, all
    scope_id     TEXT NOT NULL,        -- the item, node, segment or site; '' for all
    start_ns     INTEGER NOT NULL,
    end_ns       INTEGER NOT NULL,
    announced_ns INTEGER NOT NULL,
    kind         TEXT NOT NULL,        -- scheduled, emergency, patch
    note         TEXT NOT NULL,
    source       TEXT NOT NULL,        -- import, cli, inventory
    created_ns   INTEGER,              -- NULL: stored before version 5
    created_by   TEXT,
    cancelled_ns INTEGER               -- NULL: in force
);
INSERT INTO maintenance_windows_v5 (scope, scope_id, start_ns, end_ns, announced_ns, kind,
    note, source)
SELECT CASE WHEN item_id IS NULL THEN 'all' ELSE 'item' END, ifnull(item_id, ''), start_ns,
    end_ns, announced_ns, CASE kind WHEN 'planned' THEN 'scheduled' ELSE kind END, note,
    'import'
FROM maintenance_windows ORDER BY rowid;
DROP TABLE maintenance_windows;
ALTER TABLE maintenance_windows_v5 RENAME TO maintenance_windows;
CREATE UNIQUE INDEX maintenance_windows_key
    ON maintenance_windows (source, scope, scope_id, start_ns, end_ns)
    WHERE cancelled_ns IS NULL;
ALTER TABLE overrides ADD COLUMN source TEXT NOT NULL DEFAULT 'import';
ALTER TABLE overrides ADD COLUMN created_by TEXT
"""

_COLUMNS = (
    "id, scope, scope_id, start_ns, end_ns, announced_ns, kind, note, source, created_ns, "
    "created_by, cancelled_ns"
)


def _row(window: MaintenanceWindow) -> tuple[object, ...]:
    """The stored columns after id, in ``_COLUMNS`` order."""
    return (str(window.scope), window.scope_id or "", window.start_ns, window.end_ns,
            window.announced_ns, window.kind.value, window.note, window.source.value,
            window.created_ns, window.created_by or None, window.cancelled_ns)  # fmt: skip


def _window(row: Sequence[Any]) -> MaintenanceWindow:
    (window_id, scope, scope_id, start, end, announced, kind, note, source, created, by,
     cancelled) = row  # fmt: skip
    resolved = MaintenanceScope(scope)
    return MaintenanceWindow(
        item_id=None,
        start_ns=int(start),
        end_ns=int(end),
        announced_ns=int(announced),
        kind=MaintenanceKind(kind),
        note=str(note),
        scope=resolved,
        scope_id=None if resolved is MaintenanceScope.ALL else str(scope_id),
        window_id=int(window_id),
        source=WindowSource(source),
        cancelled_ns=None if cancelled is None else int(cancelled),
        created_ns=None if created is None else int(created),
        created_by=str(by or ""),
    )


def _key(window: MaintenanceWindow) -> tuple[str, str, int, int]:
    return (str(window.scope), window.scope_id or "", window.start_ns, window.end_ns)


_ACTIVE_WITH_KEY = (
    f"SELECT {_COLUMNS} FROM maintenance_windows WHERE source=? AND scope=? AND scope_id=? "
    "AND start_ns=? AND end_ns=? AND cancelled_ns IS NULL"
)


# -- windows -------------------------------------------------------------------


def add_window(conn: sqlite3.Connection, window: MaintenanceWindow) -> int:
    """Store a new window; its id. ConfigError when one of the same source, scope and
    span is in force already (naming its id)."""
    existing = conn.execute(_ACTIVE_WITH_KEY, (window.source.value, *_key(window))).fetchone()
    if existing is not None:
        raise ConfigError(
            f"maintenance window {existing[0]} already covers {_scope_text(window)} from the "
            "same start to the same end; cancel it first to replace it"
        )
    cursor = conn.execute(
        f"INSERT INTO maintenance_windows ({_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, ?, ?)",
        _row(window),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def list_windows(
    conn: sqlite3.Connection,
    since_ns: int | None = None,
    include_cancelled: bool = False,
    until_ns: int | None = None,
) -> list[MaintenanceWindow]:
    """Windows that end after ``since_ns`` and start before ``until_ns`` (either None:
    no bound), by start, end and id; cancelled ones too when asked."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM maintenance_windows "
        "WHERE (?1 IS NULL OR end_ns > ?1) AND (?2 IS NULL OR start_ns < ?2) "
        "AND (?3 OR cancelled_ns IS NULL) ORDER BY start_ns, end_ns, id",
        (since_ns, until_ns, include_cancelled),
    )
    return [_window(row) for row in rows]


def cancel_window(conn: sqlite3.Connection, window_id: int, now_ns: int) -> MaintenanceWindow:
    """Mark window ``window_id`` cancelled; the window as it was. ConfigError naming
    the id when there is none, it is cancelled already, or the inventory owns it."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM maintenance_windows WHERE id=?", (window_id,)
    ).fetchone()
    if row is None:
        raise ConfigError(f"there is no maintenance window {window_id}")
    window = _window(row)
    if window.cancelled_ns is not None:
        raise ConfigError(f"maintenance window {window_id} is already cancelled")
    if window.source is WindowSource.INVENTORY:
        # The next reload would bring it back: the file is where it lives.
        raise ConfigError(
            f"maintenance window {window_id} comes from the inventory file; remove it "
            "there (the collector then cancels it on reload)"
        )
    conn.execute("UPDATE maintenance_windows SET cancelled_ns=? WHERE id=?", (now_ns, window_id))
    return window


def upsert_imported_windows(
    conn: sqlite3.Connection, windows: Iterable[MaintenanceWindow], now_ns: int
) -> None:
    """An import's windows: a window whose key is in force is replaced (announced,
    kind, note); one an operator cancelled stays cancelled and is not added again."""
    for window in windows:
        key = _key(window)
        cancelled = conn.execute(
            "SELECT 1 FROM maintenance_windows WHERE source='import' AND scope=? AND "
            "scope_id=? AND start_ns=? AND end_ns=? AND cancelled_ns IS NOT NULL",
            key,
        ).fetchone()
        if cancelled is not None:
            continue
        conn.execute(
            f"INSERT INTO maintenance_windows ({_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, "
            "'import', ?, NULL, NULL) "
            "ON CONFLICT (source, scope, scope_id, start_ns, end_ns) WHERE cancelled_ns IS NULL "
            "DO UPDATE SET announced_ns=excluded.announced_ns, kind=excluded.kind, "
            "note=excluded.note",
            (*key, window.announced_ns, window.kind.value, window.note, now_ns),
        )


@dataclass(frozen=True, slots=True)
class InventorySync:
    """What ``sync_inventory_windows`` changed: windows added, updated, cancelled."""

    added: int = 0
    updated: int = 0
    cancelled: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.cancelled)


def sync_inventory_windows(
    conn: sqlite3.Connection, windows: Sequence[MaintenanceWindow], now_ns: int
) -> InventorySync:
    """Make the stored windows of source ``inventory`` that are in force equal to
    ``windows`` (the inventory's ``maintenance:`` list), in the caller's transaction.

    A window is matched by scope, scope id, start and end: a new one is added, a
    matched one takes the file's announcement, kind and note, and one the file no
    longer lists is cancelled at ``now_ns`` (kept, and listed with ``--all``).
    Windows of other sources are never touched.
    """
    stored = {
        _key(window): window
        for window in map(
            _window,
            conn.execute(
                f"SELECT {_COLUMNS} FROM maintenance_windows "
                "WHERE source='inventory' AND cancelled_ns IS NULL"
            ),
        )
    }
    wanted = {_key(window): window for window in windows}
    added = updated = 0
    for key, window in wanted.items():
        old = stored.get(key)
        if old is None:
            conn.execute(
                f"INSERT INTO maintenance_windows ({_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, "
                "?, 'inventory', ?, NULL, NULL)",
                (*key, window.announced_ns, window.kind.value, window.note, now_ns),
            )
            added += 1
        elif (old.announced_ns, old.kind, old.note) != (window.announced_ns, window.kind,
                                                         window.note):  # fmt: skip
            conn.execute(
                "UPDATE maintenance_windows SET announced_ns=?, kind=?, note=? WHERE id=?",
                (window.announced_ns, window.kind.value, window.note, old.window_id),
            )
            updated += 1
    gone = [old.window_id for key, old in stored.items() if key not in wanted]
    conn.executemany(
        "UPDATE maintenance_windows SET cancelled_ns=? WHERE id=?", [(now_ns, i) for i in gone]
    )
    return InventorySync(added, updated, len(gone))


def _scope_text(window: MaintenanceWindow) -> str:
    if window.scope is MaintenanceScope.ALL:
        return "every service item"
    return f"{window.scope} {window.scope_id}"


# -- overrides -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredOverride:
    """An override with where it came from and who entered it."""

    override: Override
    source: WindowSource
    created_ns: int
    created_by: str = ""


def add_override(conn: sqlite3.Connection, override: Override, now_ns: int, by: str = "") -> None:
    """Store an operator's override. ConfigError when the item has one for exactly
    that span already (its cause and reason are shown: remove it first)."""
    existing = conn.execute(
        "SELECT cause, reason FROM overrides WHERE item_id=? AND start_ns=? AND end_ns=?",
        (override.item_id, override.start_ns, override.end_ns),
    ).fetchone()
    if existing is not None:
        raise ConfigError(
            f"service item {override.item_id!r} already has an override for that span "
            f"(cause {existing[0]}: {existing[1]!r}); remove it first to replace it"
        )
    conn.execute(
        "INSERT INTO overrides (item_id, start_ns, end_ns, cause, reason, created_ns, source, "
        "created_by) VALUES (?, ?, ?, ?, ?, ?, 'cli', ?)",
        (override.item_id, override.start_ns, override.end_ns, override.cause.value,
         override.reason, now_ns, by or None),
    )  # fmt: skip


def list_overrides(conn: sqlite3.Connection, item_id: str | None = None) -> list[StoredOverride]:
    """Every override (of one item), by item and span."""
    rows = conn.execute(
        "SELECT item_id, start_ns, end_ns, cause, reason, source, created_ns, created_by "
        "FROM overrides WHERE ?1 IS NULL OR item_id = ?1 ORDER BY item_id, start_ns, end_ns",
        (item_id,),
    )
    return [
        StoredOverride(
            Override(item, start, end, Cause(cause), reason),
            WindowSource(source),
            created,
            by or "",
        )
        for item, start, end, cause, reason, source, created, by in rows
    ]


def remove_override(
    conn: sqlite3.Connection, item_id: str, start_ns: int, end_ns: int
) -> StoredOverride:
    """Delete the item's override for exactly ``[start_ns, end_ns)``; what it was.
    ConfigError when there is none."""
    found = [
        o
        for o in list_overrides(conn, item_id)
        if (o.override.start_ns, o.override.end_ns) == (start_ns, end_ns)
    ]
    if not found:
        raise ConfigError(
            f"service item {item_id!r} has no override with exactly that start and end "
            f"(`slawatch-collector override list --service-item {item_id}` shows its overrides)"
        )
    conn.execute(
        "DELETE FROM overrides WHERE item_id=? AND start_ns=? AND end_ns=?",
        (item_id, start_ns, end_ns),
    )
    return found[0]
