"""Maintenance windows: kinds and their aliases, scopes resolved to service items, the
import format's and the inventory's windows, and the store rules for sources."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from collector.errors import ConfigError, InputFileError, InventoryError
from collector.inventory import inventory_from_mapping
from collector.sla.importer import parse_records
from collector.sla.model import (
    HOUR,
    ItemPlace,
    MaintenanceKind,
    MaintenanceScope,
    MaintenanceWindow,
    WindowSource,
    parse_kind,
)
from collector.store.sqlite import migrate
from collector.store.windows import (
    add_window,
    cancel_window,
    list_windows,
    sync_inventory_windows,
    upsert_imported_windows,
)
from collector.times import format_time, parse_time_ns

T0 = parse_time_ns("2026-11-22T10:00:00Z")

# A VM on hypervisor hv1 in segment seg1 of site fra: how the lead's inventory places it.
VM_ITEM = ItemPlace("vm-web", nodes=("vm1", "hv1"), segment="seg1", site="fra")


def window(scope: MaintenanceScope, scope_id: str | None, **extra: Any) -> MaintenanceWindow:
    fields: dict[str, Any] = {"start_ns": T0, "end_ns": T0 + HOUR, "announced_ns": T0 - HOUR}
    fields.update(extra)
    return MaintenanceWindow(None, scope=scope, scope_id=scope_id, **fields)


# -- kinds ----------------------------------------------------------------------------


def test_kinds_are_scheduled_emergency_patch_and_the_old_names_are_aliases() -> None:
    assert [kind.value for kind in MaintenanceKind] == ["scheduled", "emergency", "patch"]
    assert MaintenanceKind("planned") is MaintenanceKind.SCHEDULED
    assert MaintenanceKind("time-critical-patch") is MaintenanceKind.PATCH
    assert MaintenanceKind.PLANNED is MaintenanceKind.SCHEDULED  # older code's name
    assert parse_kind("emergency") is MaintenanceKind.EMERGENCY
    for bad in ("Scheduled", "urgent", 3, None):
        with pytest.raises(ValueError, match="is not one of scheduled, emergency, patch"):
            parse_kind(bad)


# -- scopes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "scope_id", "covers"),
    [
        (MaintenanceScope.ALL, None, True),
        (MaintenanceScope.ITEM, "vm-web", True),
        (MaintenanceScope.ITEM, "vm-mail", False),
        (MaintenanceScope.NODE, "vm1", True),  # the VM itself
        (MaintenanceScope.NODE, "hv1", True),  # the hypervisor it runs on
        (MaintenanceScope.NODE, "hv2", False),
        (MaintenanceScope.SEGMENT, "seg1", True),
        (MaintenanceScope.SEGMENT, "seg2", False),
        (MaintenanceScope.SITE, "fra", True),
        (MaintenanceScope.SITE, "ams", False),
    ],
)
def test_a_windows_scope_covers_the_items_placed_under_it(
    scope: MaintenanceScope, scope_id: str | None, covers: bool
) -> None:
    assert VM_ITEM.covered_by(window(scope, scope_id)) is covers


def test_without_a_place_only_the_items_own_windows_and_windows_for_all_apply() -> None:
    bare = ItemPlace("vm-web")
    assert bare.covered_by(window(MaintenanceScope.ALL, None))
    assert bare.covered_by(window(MaintenanceScope.ITEM, "vm-web"))
    # A segment or site window must not cover an item of unknown place by accident.
    for scope, scope_id in ((MaintenanceScope.NODE, "hv1"), (MaintenanceScope.SEGMENT, "seg1"),
                            (MaintenanceScope.SITE, "fra")):  # fmt: skip
        assert not bare.covered_by(window(scope, scope_id))


def test_the_item_shorthand_and_the_scope_agree() -> None:
    shorthand = MaintenanceWindow("web", T0, T0 + HOUR, T0)
    assert (shorthand.scope, shorthand.scope_id) == (MaintenanceScope.ITEM, "web")
    every = MaintenanceWindow(None, T0, T0 + HOUR, T0)
    assert (every.scope, every.scope_id, every.item_id) == (MaintenanceScope.ALL, None, None)
    assert window(MaintenanceScope.ITEM, "web").item_id == "web"
    assert window(MaintenanceScope.NODE, "hv1").item_id is None
    with pytest.raises(ValueError, match="needs a scope id"):
        window(MaintenanceScope.SEGMENT, None)
    with pytest.raises(ValueError, match="names no item"):
        window(MaintenanceScope.ALL, "x")
    with pytest.raises(ValueError, match="has no item id"):
        MaintenanceWindow("web", T0, T0 + HOUR, T0, scope=MaintenanceScope.NODE, scope_id="n")


# -- times -------------------------------------------------------------------------------


def test_times_print_as_rfc3339_and_read_back_to_the_nanosecond() -> None:
    for text in ("2026-11-22T10:00:00Z", "2026-11-22T10:00:00.000000001Z", "1970-01-01T00:00:00Z"):
        assert format_time(parse_time_ns(text)) == text
    assert format_time(parse_time_ns("2026-11-22T12:00:00.25+02:00")) == "2026-11-22T10:00:00.25Z"
    # What YAML makes of an unquoted timestamp: taken with its offset, refused without.
    aware = dt.datetime(2026, 11, 22, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert parse_time_ns(aware) == T0
    with pytest.raises(ValueError, match="has no offset"):
        parse_time_ns(dt.datetime(2026, 11, 22, 10))
    with pytest.raises(ValueError, match="is a date"):
        parse_time_ns(dt.date(2026, 11, 22))


# -- the import format ----------------------------------------------------------------------


ITEM = {"type": "service_item", "id": "web", "policy": "sonar", "monthly_fee": "1",
        "currency": "USD", "checks": [{"agent": "a", "check": "c"}]}  # fmt: skip
MAINT = {"type": "maintenance", "start": "2026-11-22T10:00:00Z", "end": "2026-11-22T11:00:00Z",
         "announced": "2026-11-20T10:00:00Z", "kind": "scheduled"}  # fmt: skip


def maint(**fields: Any) -> str:
    return json.dumps({k: v for k, v in {**MAINT, **fields}.items() if v is not None})


def import_problems(*lines: str) -> list[str]:
    with pytest.raises(InputFileError) as caught:
        parse_records([json.dumps(ITEM), *lines])
    return list(caught.value.problems)


def test_imported_windows_take_a_scope_or_the_item_shorthand() -> None:
    records = parse_records([
        json.dumps(ITEM),
        maint(scope="node", scope_id="hv1", kind="planned"),
        maint(scope="segment", scope_id="seg1", kind="time-critical-patch"),
        maint(scope="site", scope_id="fra"),
        maint(scope="all", kind="emergency"),
        maint(item="web"),
        maint(scope="item", scope_id="web", start="2026-11-23T10:00:00Z",
              end="2026-11-23T11:00:00Z"),
        maint(start="2026-11-24T10:00:00Z", end="2026-11-24T11:00:00Z"),
    ])  # fmt: skip
    assert [(str(w.scope), w.scope_id, w.kind.value) for w in records.maintenance] == [
        ("node", "hv1", "scheduled"),
        ("segment", "seg1", "patch"),
        ("site", "fra", "scheduled"),
        ("all", None, "emergency"),
        ("item", "web", "scheduled"),
        ("item", "web", "scheduled"),
        ("all", None, "scheduled"),
    ]


def test_imported_scopes_are_checked_line_by_line() -> None:
    assert import_problems(
        maint(scope="rack", scope_id="r1"),
        maint(scope="node"),
        maint(scope="all", scope_id="x"),
        maint(scope="node", scope_id="hv1", item="web"),
        maint(scope_id="hv1"),
        maint(scope="item", scope_id="web-9"),
        maint(scope="node", scope_id="bad id"),
        maint(scope="node", scope_id="hv1"),
        maint(scope="node", scope_id="hv1", note="again"),
    ) == [
        "line 2: scope: 'rack' is not one of item, node, segment, site, all",
        "line 3: scope_id: required",
        "line 4: scope_id: scope all covers every item: give no scope_id",
        "line 5: item: give either item or scope (with scope_id), not both",
        "line 6: scope_id: given without scope",
        "line 7: item: 'web-9' is not a service item of this file nor of the store",
        "line 8: scope_id: 'bad id' must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
        "line 10: start: the same scope, start and end as line 9",
    ]


# -- the inventory ------------------------------------------------------------------------


def inventory_data(*windows: object) -> dict[str, Any]:
    return {
        "sites": [{"id": "fra", "segments": [{"id": "seg1", "nodes": [
            {"id": "hv1", "address": "198.18.1.1"}, {"id": "vm1", "address": "198.18.1.2"},
        ]}]}],
        "services": [{"id": "vm-web", "node": "vm1", "owner": "acme", "contract": "sonar"}],
        "maintenance": list(windows),
    }  # fmt: skip


INV = {"scope": "node", "id": "hv1", "start": "2026-11-22T10:00:00Z",
       "end": "2026-11-22T11:00:00Z", "announced": "2026-11-01T00:00:00Z",
       "kind": "planned"}  # fmt: skip


def test_the_inventory_lists_windows_of_every_scope() -> None:
    loaded = inventory_from_mapping(inventory_data(
        INV,
        {**INV, "scope": "segment", "id": "seg1", "kind": "emergency", "note": "switch"},
        {**INV, "scope": "site", "id": "fra"},
        {**INV, "scope": "item", "id": "vm-web"},
        {k: v for k, v in INV.items() if k != "id"} | {"scope": "all"},
        # YAML's own timestamps (unquoted) are taken too.
        {**INV, "start": dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC),
         "end": dt.datetime(2026, 11, 23, 11, tzinfo=dt.UTC)},
    ))  # fmt: skip
    assert [(str(w.scope), w.scope_id, w.kind.value, w.note) for w in loaded.maintenance] == [
        ("node", "hv1", "scheduled", ""),
        ("segment", "seg1", "emergency", "switch"),
        ("site", "fra", "scheduled", ""),
        ("item", "vm-web", "scheduled", ""),
        ("all", None, "scheduled", ""),
        ("node", "hv1", "scheduled", ""),
    ]
    assert {w.source for w in loaded.maintenance} == {WindowSource.INVENTORY}
    assert loaded.maintenance[-1].start_ns == T0 + 24 * HOUR


def test_inventory_windows_are_checked_by_field_path() -> None:
    with pytest.raises(InventoryError) as caught:
        inventory_from_mapping(inventory_data(
            {**INV, "id": "hv9"},
            {**INV, "scope": "segment", "id": "vm1"},
            {**INV, "scope": "item", "id": "hv1"},
            {**INV, "scope": "all"},
            {**INV, "scope": "rack"},
            {**INV, "end": "2026-11-22T09:00:00Z", "kind": "urgent", "colour": "red"},
            {**INV, "start": dt.datetime(2026, 11, 22, 10), "announced": None},
            {**INV, "note": "x" * 4097},
            INV,
            INV,
            "hv1",
        ))  # fmt: skip
    assert list(caught.value.problems) == [
        "maintenance[0].id: 'hv9' is not a node of this inventory",
        "maintenance[1].id: 'vm1' is not a segment of this inventory",
        "maintenance[2].id: 'hv1' is not a service of this inventory",
        "maintenance[3].id: scope all covers every service item: give no id",
        "maintenance[4].scope: 'rack' is not one of item, node, segment, site, all",
        "maintenance[5].colour: unknown setting",
        "maintenance[5].end: must be after start",
        "maintenance[5].kind: 'urgent' is not one of scheduled, emergency, patch, planned, "
        "time-critical-patch",
        "maintenance[6].start: 2026-11-22T10:00:00 has no offset; write Z or +HH:MM after it, "
        "else it would mean a different instant on every machine",
        "maintenance[6].announced: required",
        "maintenance[7].note: longer than 4096 characters",
        "maintenance[9]: the same scope, id, start and end as maintenance[8]",
        "maintenance[10]: must be a mapping of settings",
    ]


# -- the store: each source owns its windows -------------------------------------------------


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
    migrate(connection, tmp_path / "c.db")
    return connection


def test_inventory_sync_adds_updates_and_cancels_only_inventory_windows(
    conn: sqlite3.Connection,
) -> None:
    mine = window(MaintenanceScope.NODE, "hv1", source=WindowSource.CLI)
    cli_id = add_window(conn, mine)
    node = window(MaintenanceScope.NODE, "hv1", source=WindowSource.INVENTORY)
    site = window(MaintenanceScope.SITE, "fra", source=WindowSource.INVENTORY)
    first = sync_inventory_windows(conn, [node, site], now_ns=T0)
    assert (first.added, first.updated, first.cancelled) == (2, 0, 0)
    assert not sync_inventory_windows(conn, [node, site], now_ns=T0).changed

    # The file changes: the site window's note, the node window gone, a segment one new.
    site2 = window(MaintenanceScope.SITE, "fra", note="moved racks", source=WindowSource.INVENTORY)
    segment = window(MaintenanceScope.SEGMENT, "seg1", source=WindowSource.INVENTORY)
    second = sync_inventory_windows(conn, [site2, segment], now_ns=T0 + 1)
    assert (second.added, second.updated, second.cancelled) == (1, 1, 1)
    in_force = {(w.source, str(w.scope), w.note) for w in list_windows(conn)}
    assert in_force == {
        (WindowSource.CLI, "node", ""),
        (WindowSource.INVENTORY, "site", "moved racks"),
        (WindowSource.INVENTORY, "segment", ""),
    }
    cancelled = [w for w in list_windows(conn, include_cancelled=True) if not w.active]
    assert [(str(w.scope), w.cancelled_ns) for w in cancelled] == [("node", T0 + 1)]
    # An operator's identical window was never the inventory's to cancel.
    assert any(w.window_id == cli_id and w.active for w in list_windows(conn))


def test_cancel_names_the_window_and_refuses_what_it_cannot_do(conn: sqlite3.Connection) -> None:
    window_id = add_window(conn, window(MaintenanceScope.ALL, None, source=WindowSource.CLI))
    with pytest.raises(ConfigError, match=f"maintenance window {window_id} already covers"):
        add_window(conn, window(MaintenanceScope.ALL, None, source=WindowSource.CLI))
    cancel_window(conn, window_id, T0)
    with pytest.raises(ConfigError, match=f"maintenance window {window_id} is already cancelled"):
        cancel_window(conn, window_id, T0)
    with pytest.raises(ConfigError, match="there is no maintenance window 99"):
        cancel_window(conn, 99, T0)
    # Cancelled, its key is free again: the same window may be announced anew.
    assert add_window(conn, window(MaintenanceScope.ALL, None, source=WindowSource.CLI)) > window_id
    sync_inventory_windows(
        conn, [window(MaintenanceScope.NODE, "hv1", source=WindowSource.INVENTORY)], T0
    )
    (from_file,) = [w for w in list_windows(conn) if w.source is WindowSource.INVENTORY]
    assert from_file.window_id is not None
    with pytest.raises(ConfigError, match="comes from the inventory file; remove it there"):
        cancel_window(conn, from_file.window_id, T0)


def test_an_import_does_not_bring_back_a_window_an_operator_cancelled(
    conn: sqlite3.Connection,
) -> None:
    imported = window(MaintenanceScope.NODE, "hv1")
    upsert_imported_windows(conn, [imported], T0)
    upsert_imported_windows(conn, [window(MaintenanceScope.NODE, "hv1", note="fixed")], T0)
    (stored,) = list_windows(conn)
    assert stored.note == "fixed"  # a re-import replaces, as before
    assert stored.window_id is not None
    cancel_window(conn, stored.window_id, T0)
    upsert_imported_windows(conn, [imported], T0)
    assert list_windows(conn) == []
    assert len(list_windows(conn, include_cancelled=True)) == 1
