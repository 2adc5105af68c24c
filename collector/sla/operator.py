"""What operators enter by hand: ``slawatch-collector maintenance add|list|cancel`` and
``override add|list|remove``.

Every write is one savepoint of the store's single writer (``Store.write``), the
way ``import`` writes: a collector running on the same store (WAL) just stores
its batches before or after it, and the checks a command makes (is the item
known, is the window still in force) see exactly the rows it then changes.
Overrides are kept beside the verdicts they correct, never in place of them:
attribution's own verdict stays what it was, and reports show both.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from collector.errors import ConfigError, StoreError
from collector.inventory import Inventory, load_inventory
from collector.sla.model import Cause, MaintenanceScope, MaintenanceWindow, Override
from collector.store import windows as stored
from collector.store.incidents import current_incident
from collector.store.sla_tables import service_item_ids
from collector.store.sqlite import Store, connect, migrate
from collector.store.windows import StoredOverride
from collector.times import format_time

__all__ = [
    "add_override",
    "add_window",
    "cancel_window",
    "list_overrides",
    "list_windows",
    "remove_override",
    "render_overrides",
    "render_windows",
]

T = TypeVar("T")


def _write(db_path: Path, action: Callable[[sqlite3.Connection], T]) -> T:
    store = Store(db_path)  # created or upgraded as needed, like `import`
    try:
        return asyncio.run(store.write(action))
    finally:
        store.close()


def _read(db_path: Path, action: Callable[[sqlite3.Connection], T]) -> T:
    try:
        conn = connect(db_path)
        try:
            migrate(conn, db_path)  # a store from before version 5 has no scopes yet
            return action(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read store {db_path}: {exc}") from None


def _check_item(conn: sqlite3.Connection, item_id: str, inventory: Inventory | None) -> None:
    if item_id in service_item_ids(conn):
        return
    if inventory is not None and item_id in inventory.services:
        return
    where = (
        f"nor a service of {inventory.source}"
        if inventory is not None
        else "(give --inventory FILE if the inventory defines it)"
    )
    raise ConfigError(f"service item {item_id!r} is not in the store {where}")


def _check_scope(window: MaintenanceWindow, inventory: Inventory) -> None:
    """The window's node, segment or site is one of the inventory's."""
    known = {
        MaintenanceScope.NODE: set(inventory.nodes),
        MaintenanceScope.SEGMENT: {segment.id for segment in inventory.segments},
        MaintenanceScope.SITE: {site.id for site in inventory.sites},
    }
    assert window.scope is not None
    ids = known.get(window.scope)
    if ids is not None and window.scope_id not in ids:
        raise ConfigError(f"{window.scope} {window.scope_id!r} is not in {inventory.source}")


# -- maintenance -------------------------------------------------------------------


def add_window(db_path: Path, window: MaintenanceWindow, inventory_path: Path | None) -> int:
    """Store ``window`` (source cli); its id. With ``inventory_path``, its scope id must
    be a node, segment, site or service of that inventory; an item must be in the
    store or that inventory either way."""
    inventory = load_inventory(inventory_path) if inventory_path is not None else None
    if inventory is not None:
        _check_scope(window, inventory)

    def action(conn: sqlite3.Connection) -> int:
        if window.scope is MaintenanceScope.ITEM:
            assert window.scope_id is not None
            _check_item(conn, window.scope_id, inventory)
        return stored.add_window(conn, window)

    return _write(db_path, action)


def list_windows(
    db_path: Path, since_ns: int | None, include_cancelled: bool
) -> list[MaintenanceWindow]:
    return _read(db_path, lambda conn: stored.list_windows(conn, since_ns, include_cancelled))


def cancel_window(db_path: Path, window_id: int, now_ns: int) -> MaintenanceWindow:
    return _write(db_path, lambda conn: stored.cancel_window(conn, window_id, now_ns))


def _window_dict(window: MaintenanceWindow) -> dict[str, object]:
    return {
        "id": window.window_id,
        "scope": str(window.scope),
        "scope_id": window.scope_id,
        "start": format_time(window.start_ns),
        "end": format_time(window.end_ns),
        "announced": format_time(window.announced_ns),
        "kind": window.kind.value,
        "note": window.note,
        "source": window.source.value,
        "created": None if window.created_ns is None else format_time(window.created_ns),
        "created_by": window.created_by or None,
        "cancelled": None if window.cancelled_ns is None else format_time(window.cancelled_ns),
    }


def render_windows(windows: Sequence[MaintenanceWindow], fmt: str) -> str:
    if fmt == "json":
        rows = [_window_dict(window) for window in windows]
        return json.dumps({"schema": "slawatch.maintenance/v1", "windows": rows}, indent=2)
    if not windows:
        return "(no maintenance windows)"
    header = ("id", "scope", "start", "end", "announced", "kind", "source", "state", "note")
    body = [
        (
            str(w.window_id),
            "all" if w.scope is MaintenanceScope.ALL else f"{w.scope} {w.scope_id}",
            format_time(w.start_ns),
            format_time(w.end_ns),
            format_time(w.announced_ns),
            w.kind.value,
            w.source.value,
            "in force" if w.cancelled_ns is None else f"cancelled {_to_second(w.cancelled_ns)}",
            " ".join(w.note.split()),  # one line per window, whatever the note holds
        )
        for w in windows
    ]
    return _table(header, body)


# -- overrides -----------------------------------------------------------------------


def add_override(
    db_path: Path, override: Override, now_ns: int, by: str = "", inventory_path: Path | None = None
) -> None:
    """Store an operator's override of ``override.item_id`` (in the store, or in the
    inventory at ``inventory_path``)."""
    inventory = load_inventory(inventory_path) if inventory_path is not None else None

    def action(conn: sqlite3.Connection) -> None:
        _check_item(conn, override.item_id, inventory)
        stored.add_override(conn, override, now_ns, by)

    _write(db_path, action)


def override_incident(
    db_path: Path, incident_id: str, cause: Cause, reason: str, now_ns: int, by: str = ""
) -> list[Override]:
    """Override every service item of an ended incident (its own and the affected ones)
    over the incident's span, in one transaction; the overrides stored. The incident
    keeps its measured verdict beside them."""

    def action(conn: sqlite3.Connection) -> list[Override]:
        found = current_incident(conn, incident_id)
        if found is None:
            raise ConfigError(f"there is no incident {incident_id!r} (see `incidents`)")
        incident = found.incident
        if incident.open or found.withdrawn:
            state = "still open" if incident.open else "withdrawn"
            raise ConfigError(
                f"incident {incident_id} is {state}; override a span of a service item with "
                "--service-item, --start and --end instead"
            )
        entries = [
            Override(item_id, incident.start_ns, incident.end_ns, cause, reason)
            for item_id in incident.all_items
        ]
        for entry in entries:
            stored.add_override(conn, entry, now_ns, by)
        return entries

    return _write(db_path, action)


def list_overrides(db_path: Path, item_id: str | None) -> list[StoredOverride]:
    return _read(db_path, lambda conn: stored.list_overrides(conn, item_id))


def remove_override(db_path: Path, item_id: str, start_ns: int, end_ns: int) -> StoredOverride:
    return _write(db_path, lambda conn: stored.remove_override(conn, item_id, start_ns, end_ns))


def _override_dict(entry: StoredOverride) -> dict[str, object]:
    o = entry.override
    return {
        "service_item": o.item_id,
        "start": format_time(o.start_ns),
        "end": format_time(o.end_ns),
        "cause": o.cause.value,
        "reason": o.reason,
        "source": entry.source.value,
        "created": format_time(entry.created_ns),
        "created_by": entry.created_by or None,
    }


def render_overrides(overrides: Sequence[StoredOverride], fmt: str) -> str:
    if fmt == "json":
        rows = [_override_dict(entry) for entry in overrides]
        return json.dumps({"schema": "slawatch.overrides/v1", "overrides": rows}, indent=2)
    if not overrides:
        return "(no overrides)"
    header = ("service item", "start", "end", "cause", "source", "created", "by", "reason")
    body = [
        (
            e.override.item_id,
            format_time(e.override.start_ns),
            format_time(e.override.end_ns),
            e.override.cause.value,
            e.source.value,
            _to_second(e.created_ns),
            e.created_by or "-",
            " ".join(e.override.reason.split()),
        )
        for e in overrides
    ]
    return _table(header, body)


def _to_second(ns: int) -> str:
    """A moment the store stamped (created, cancelled): whole seconds read better in a
    table; the JSON format keeps the nanoseconds."""
    return format_time(ns - ns % 10**9)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last (free text) is not padded."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
        return "  ".join([*padded, cells[-1]]).rstrip()

    return "\n".join(line(row) for row in (header, *rows))
