"""Maintenance windows and overrides through the real CLI and store: add, list, cancel,
the errors, imported scopes, a node window counted as maintenance for a VM on that node
by the SLA engine, a version 4 store upgraded keeping its windows, and the running
collector keeping the inventory's windows in the store."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.server import CollectorServer
from collector.sla.engine import MARGIN_NS, evaluate, month_bounds
from collector.sla.evidence import load_evidence, load_item
from collector.sla.model import Cause, ItemPlace
from collector.sla.policy import load_policies
from collector.store.places import stored_place
from collector.store.sqlite import MIGRATIONS, SCHEMA_VERSION, connect
from collector.times import parse_time_ns
from tests.conftest import COLLECTOR_CMD
from tests.integration.uplink_helpers import collector_on_loopback, until


def collector(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COLLECTOR_CMD, *argv], capture_output=True, text=True, timeout=120)


def ok(*argv: str) -> str:
    done = collector(*argv)
    assert done.returncode == 0, done.stderr
    return done.stdout


def listed(db: Path, *extra: str) -> list[dict[str, Any]]:
    windows: list[dict[str, Any]] = json.loads(
        ok("maintenance", "list", "--format", "json", "--db", str(db), *extra)
    )["windows"]
    return windows


SPAN = ("--start", "2026-11-22T10:00:00Z", "--end", "2026-11-22T11:00:00Z")


def test_add_list_and_cancel(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    first = ok("maintenance", "add", "--scope", "node", "--id", "hv1", *SPAN,
               "--announced", "2026-11-15T10:00:00+01:00", "--kind", "planned",
               "--note", "firmware", "--by", "alice", "--db", str(db))  # fmt: skip
    second = ok("maintenance", "add", "--scope", "all", "--start", "2026-12-01T00:00:00Z",
                "--end", "2026-12-01T01:00:00Z", "--kind", "time-critical-patch",
                "--db", str(db))  # fmt: skip
    assert (first.strip(), second.strip()) == ("1", "2")

    (node, every) = listed(db)
    assert {k: node[k] for k in ("id", "scope", "scope_id", "start", "end", "announced", "kind",
                                 "note", "source", "created_by", "cancelled")} == {
        "id": 1, "scope": "node", "scope_id": "hv1", "start": "2026-11-22T10:00:00Z",
        "end": "2026-11-22T11:00:00Z", "announced": "2026-11-15T09:00:00Z",
        "kind": "scheduled", "note": "firmware", "source": "cli", "created_by": "alice",
        "cancelled": None,
    }  # fmt: skip
    assert (every["scope"], every["scope_id"], every["kind"]) == ("all", None, "patch")
    # --announced left out: now, to the second.
    lag = parse_time_ns(every["created"]) - parse_time_ns(every["announced"])
    assert 0 <= lag < 10**9
    # --since: only windows ending after it.
    assert [w["id"] for w in listed(db, "--since", "2026-11-22T11:00:00Z")] == [2]

    table = ok("maintenance", "list", "--db", str(db))
    assert table.splitlines()[0].split() == ["id", "scope", "start", "end", "announced", "kind",
                                             "source", "state", "note"]  # fmt: skip
    assert "node hv1" in table
    assert "firmware" in table

    assert ok("maintenance", "cancel", "1", "--db", str(db)).strip() == (
        "cancelled maintenance window 1 (node hv1)"
    )
    assert [w["id"] for w in listed(db)] == [2]
    (cancelled, _) = listed(db, "--all")
    assert cancelled["id"] == 1
    assert cancelled["cancelled"] is not None
    assert "cancelled 20" in ok("maintenance", "list", "--all", "--db", str(db))

    again = collector("maintenance", "cancel", "1", "--db", str(db))
    assert again.returncode == 2
    assert "maintenance window 1 is already cancelled" in again.stderr
    missing = collector("maintenance", "cancel", "7", "--db", str(db))
    assert missing.returncode == 2
    assert "there is no maintenance window 7" in missing.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scope", "node", "--id", "hv1", "--start", "2026-11-22T11:00:00Z",
          "--end", "2026-11-22T10:00:00Z"], "Invalid value for '--end': must be after --start"),
        (["--scope", "node", "--id", "hv1", "--start", "2026-11-22 10:00",
          "--end", "2026-11-22T11:00:00Z"], "Invalid value for '--start': '2026-11-22 10:00' is "
                                            "not an RFC 3339 timestamp with an offset"),
        (["--scope", "node", "--id", "hv1", *SPAN, "--announced", "yesterday"],
         "Invalid value for '--announced': 'yesterday' is not an RFC 3339"),
        (["--scope", "node", "--id", "hv1", *SPAN, "--kind", "urgent"],
         "Invalid value for '--kind': 'urgent' is not one of 'scheduled', 'emergency', 'patch'"),
        (["--scope", "rack", "--id", "r1", *SPAN], "Invalid value for '--scope': 'rack'"),
        (["--scope", "node", *SPAN], "Invalid value for '--id': required with --scope node"),
        (["--scope", "all", "--id", "x", *SPAN], "--scope all covers every service item"),
        (["--scope", "node", "--id", "hv 1", *SPAN], "Invalid value for '--id': 'hv 1' must"),
        (["--scope", "node", "--id", "hv1", *SPAN, "--note", "x" * 4097],
         "Invalid value for '--note': 4097 characters, at most 4096"),
        (["--scope", "item", "--id", "web-9", *SPAN],
         "service item 'web-9' is not in the store (give --inventory FILE"),
    ],
)  # fmt: skip
def test_bad_windows_are_refused_naming_the_problem_and_store_nothing(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    db = tmp_path / "c.db"
    done = collector("maintenance", "add", *argv, "--db", str(db))
    assert done.returncode == 2
    assert message in done.stderr, done.stderr
    if db.exists():
        assert listed(db, "--all") == []


def inventory_file(tmp_path: Path, maintenance: list[dict[str, Any]] | None = None) -> Path:
    """Site fra, segment seg1: hypervisor hv1 with VM vm1 (service vm-web), server srv2."""
    data: dict[str, Any] = {
        "sites": [{"id": "fra", "segments": [{"id": "seg1", "nodes": [
            {"id": "hv1", "address": "198.18.1.1", "role": "hypervisor"},
            {"id": "vm1", "address": "198.18.1.2", "role": "vm", "parent": "hv1"},
            {"id": "srv2", "address": "198.18.1.3"},
        ]}]}],
        "services": [{"id": "vm-web", "node": "vm1", "owner": "acme", "contract": "sonar"}],
    }  # fmt: skip
    if maintenance is not None:
        data["maintenance"] = maintenance
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_inventory_checks_scope_ids(tmp_path: Path) -> None:
    db, inventory = tmp_path / "c.db", inventory_file(tmp_path)
    for scope, scope_id in (("node", "hv1"), ("segment", "seg1"), ("site", "fra"),
                            ("item", "vm-web")):  # fmt: skip
        ok("maintenance", "add", "--scope", scope, "--id", scope_id, *SPAN,
           "--inventory", str(inventory), "--db", str(db))  # fmt: skip
    for scope, scope_id, message in (
        ("node", "hv9", "node 'hv9' is not in"),
        ("segment", "hv1", "segment 'hv1' is not in"),
        ("item", "hv1", "service item 'hv1' is not in the store nor a service of"),
    ):
        done = collector("maintenance", "add", "--scope", scope, "--id", scope_id, *SPAN,
                         "--inventory", str(inventory), "--db", str(db))  # fmt: skip
        assert done.returncode == 2
        assert message in done.stderr, done.stderr
    assert len(listed(db)) == 4


def line(**fields: object) -> str:
    return json.dumps(fields)


def test_an_import_with_scopes_is_listed_with_its_source(tmp_path: Path) -> None:
    source = tmp_path / "windows.jsonl"
    window = {"type": "maintenance", "start": "2026-11-22T10:00:00Z",
              "end": "2026-11-22T11:00:00Z", "announced": "2026-11-01T00:00:00Z"}  # fmt: skip
    source.write_text("\n".join([
        line(**window, scope="segment", scope_id="seg1", kind="emergency"),
        line(**window, scope="site", scope_id="fra", kind="planned"),
        line(**window, kind="patch"),
    ]) + "\n")  # fmt: skip
    db = tmp_path / "c.db"
    assert "maintenance windows         3  (3 new)" in ok("import", str(source), "--db", str(db))
    assert [(w["scope"], w["scope_id"], w["kind"], w["source"]) for w in listed(db)] == [
        ("segment", "seg1", "emergency", "import"),
        ("site", "fra", "scheduled", "import"),
        ("all", None, "patch", "import"),
    ]
    # Importing again changes nothing; a bad scope imports nothing, by line.
    assert "(0 new)" in ok("import", str(source), "--db", str(db))
    source.write_text(line(**window, scope="rack", scope_id="r1", kind="patch") + "\n")
    bad = collector("import", str(source), "--db", str(db))
    assert bad.returncode == 2
    assert "line 1: scope: 'rack' is not one of item, node, segment, site, all" in bad.stderr


def vm_item_down_for_an_hour(tmp_path: Path) -> Path:
    """vm-web under Sonar: its check fails (cause host) 10:00-11:00 on Sunday 22 November
    2026, up from 09:00 to 13:00 otherwise."""
    start = dt.datetime(2026, 11, 22, 9, tzinfo=dt.UTC)
    lines = [line(type="service_item", id="vm-web", policy="sonar", monthly_fee="100",
                  currency="USD", checks=[{"agent": "hv1", "check": "web"}])]  # fmt: skip
    for minute in range(4 * 60):
        down = 60 <= minute < 120
        moment = (start + dt.timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
        extra = {"cause": "host"} if down else {}
        lines.append(line(type="observation", agent="hv1", check="web", start=moment,
                          ok=not down, interval_s=60, **extra))  # fmt: skip
    source = tmp_path / "vm.jsonl"
    source.write_text("\n".join(lines) + "\n")
    db = tmp_path / "c.db"
    ok("import", str(source), "--db", str(db))
    return db


def november(db: Path, place: ItemPlace | None) -> list[tuple[Cause, bool, int]]:
    """vm-web's November outages under Sonar: (cause, counted, seconds)."""
    policy = load_policies()["sonar"]
    start, end = month_bounds("2026-11", policy)
    conn = connect(db, readonly=True)
    try:
        item = load_item(conn, "vm-web")
        evidence = load_evidence(conn, item, start, end + MARGIN_NS, place)
    finally:
        conn.close()
    month = evaluate(item, policy, "2026-11", evidence)
    return [(o.cause, o.counted, o.duration_ns // 10**9) for o in month.outages]


def test_a_node_window_is_maintenance_for_the_vm_on_that_node(tmp_path: Path) -> None:
    db = vm_item_down_for_an_hour(tmp_path)
    vm_place = ItemPlace("vm-web", nodes=("vm1", "hv1"), segment="seg1", site="fra")
    # Without a window, Sonar counts the host outage.
    assert november(db, vm_place) == [(Cause.HOST, True, 3600)]

    ok("maintenance", "add", "--scope", "node", "--id", "hv1", *SPAN,
       "--announced", "2026-11-15T00:00:00Z", "--inventory", str(inventory_file(tmp_path)),
       "--db", str(db))  # fmt: skip
    # Announced a week ahead, on a Sunday: Sonar excludes it.
    assert november(db, vm_place) == [(Cause.MAINTENANCE, False, 3600)]
    # The hypervisor's window covers what runs on it, not the neighbours, and an item
    # whose place is not known gets only its own windows and those for every item.
    elsewhere = ItemPlace("vm-web", nodes=("srv2",), segment="seg1", site="fra")
    assert november(db, elsewhere) == [(Cause.HOST, True, 3600)]
    assert november(db, None) == [(Cause.HOST, True, 3600)]

    ok("maintenance", "cancel", "1", "--db", str(db))
    assert november(db, vm_place) == [(Cause.HOST, True, 3600)]


def test_overrides_are_added_listed_and_removed_beside_the_verdict(tmp_path: Path) -> None:
    db = vm_item_down_for_an_hour(tmp_path)
    vm_place = ItemPlace("vm-web", nodes=("vm1", "hv1"))
    ok("override", "add", "--service-item", "vm-web", *SPAN, "--cause", "customer",
       "--reason", "the customer powered the VM off", "--by", "bob", "--db", str(db))  # fmt: skip
    assert november(db, vm_place) == [(Cause.CUSTOMER, False, 3600)]
    (entry,) = json.loads(ok("override", "list", "--format", "json", "--db", str(db)))["overrides"]
    assert {k: entry[k] for k in ("service_item", "start", "end", "cause", "reason", "source",
                                  "created_by")} == {
        "service_item": "vm-web", "start": "2026-11-22T10:00:00Z",
        "end": "2026-11-22T11:00:00Z", "cause": "customer",
        "reason": "the customer powered the VM off", "source": "cli", "created_by": "bob",
    }  # fmt: skip
    # The measured verdict is untouched: the rounds still say host.
    with sqlite3.connect(db) as conn:
        causes = conn.execute("SELECT DISTINCT cause FROM observations WHERE outcome!='ok'")
        assert causes.fetchall() == [("host",)]

    twice = collector("override", "add", "--service-item", "vm-web", *SPAN, "--cause", "host",
                      "--reason", "again", "--db", str(db))  # fmt: skip
    assert twice.returncode == 2
    assert "already has an override for that span (cause customer" in twice.stderr
    for argv, message in (
        (["--service-item", "vm-web", *SPAN, "--cause", "aliens", "--reason", "x"],
         "Invalid value for '--cause': 'aliens'"),
        (["--service-item", "vm-web", *SPAN, "--cause", "host", "--reason", " "],
         "Invalid value for '--reason': must not be empty"),
        (["--service-item", "vm-web", *SPAN, "--cause", "host"], "Missing option '--reason'"),
        (["--service-item", "nope", *SPAN, "--cause", "host", "--reason", "x"],
         "service item 'nope' is not in the store"),
    ):  # fmt: skip
        done = collector("override", "add", *argv, "--db", str(db))
        assert done.returncode == 2
        assert message in done.stderr, done.stderr

    half = ("--start", "2026-11-22T10:00:00Z", "--end", "2026-11-22T10:30:00Z")
    wrong = collector("override", "remove", "--service-item", "vm-web", *half, "--db", str(db))
    assert wrong.returncode == 2
    assert "has no override with exactly that start and end" in wrong.stderr
    removed = ok("override", "remove", "--service-item", "vm-web", *SPAN, "--db", str(db))
    assert removed.strip() == "override of vm-web removed (it said customer)"
    assert ok("override", "list", "--db", str(db)).strip() == "(no overrides)"
    assert november(db, vm_place) == [(Cause.HOST, True, 3600)]


def version_4_store(path: Path) -> None:
    """A store as version 4 left it, with windows of every item and of one item, in the
    kind 'planned' that version 5 renames, and an imported override."""
    schema = resources.files("collector.store").joinpath("schema.sql").read_text()
    with sqlite3.connect(path) as conn:
        conn.executescript(f"BEGIN; {schema}; PRAGMA user_version=1; COMMIT;")
        for step in (2, 3, 4):
            conn.executescript(f"BEGIN; {MIGRATIONS[step]}; PRAGMA user_version={step}; COMMIT;")
        t = parse_time_ns("2026-11-22T10:00:00Z")
        conn.executemany(
            "INSERT INTO maintenance_windows VALUES (?, ?, ?, ?, ?, ?)",
            [(None, t, t + 3600 * 10**9, t - 10**12, "planned", "every item"),
             ("web", t, t + 60 * 10**9, t, "emergency", "")],
        )  # fmt: skip
        conn.execute("INSERT INTO overrides VALUES ('web', ?, ?, 'ddos', 'flood', 5)", (t, t + 1))


def test_a_version_4_store_keeps_its_windows_and_overrides(tmp_path: Path) -> None:
    db = tmp_path / "v4.db"
    version_4_store(db)
    windows = sorted(listed(db), key=lambda w: int(w["id"]))
    assert [(w["id"], w["scope"], w["scope_id"], w["kind"], w["note"], w["source"])
            for w in windows] == [
        (1, "all", None, "scheduled", "every item", "import"),
        (2, "item", "web", "emergency", "", "import"),
    ]  # fmt: skip
    assert windows[0]["announced"] == "2026-11-22T09:43:20Z"
    assert windows[0]["created"] is None  # not known from before version 5
    (override,) = json.loads(ok("override", "list", "--format", "json", "--db", str(db)))[
        "overrides"
    ]
    assert (override["cause"], override["reason"], override["source"]) == ("ddos", "flood",
                                                                           "import")  # fmt: skip
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    # The upgraded store takes new windows with the next id.
    assert ok("maintenance", "add", "--scope", "all", *SPAN, "--db", str(db)).strip() == "3"


def test_the_running_collector_keeps_the_inventorys_windows_in_the_store(tmp_path: Path) -> None:
    window = {"scope": "node", "id": "hv1", "start": "2026-11-22T10:00:00Z",
              "end": "2026-11-22T11:00:00Z", "announced": "2026-11-01T00:00:00Z",
              "kind": "scheduled"}  # fmt: skip
    inventory = inventory_file(tmp_path, [window, {**window, "scope": "site", "id": "fra"}])
    settings = collector_on_loopback(tmp_path, inventory=inventory)
    db = settings.db_path

    def from_inventory() -> list[tuple[str, str, str | None]]:
        return [(w["scope"], w["note"], w["cancelled"]) for w in listed(db, "--all")
                if w["source"] == "inventory"]  # fmt: skip

    async def run() -> None:
        server = CollectorServer(settings)
        await server.start()
        try:
            # Stored at start, before any agent connects.
            assert from_inventory() == [("node", "", None), ("site", "", None)]
            # An operator adds one while the collector runs (same store, WAL).
            ok("maintenance", "add", "--scope", "segment", "--id", "seg1", *SPAN,
               "--db", str(db))  # fmt: skip
            inventory_file(tmp_path, [{**window, "note": "now with a note"}])
            server.reload_inventory()
            await until(lambda: len(from_inventory()) == 2 and from_inventory()[1][2], 10)
        finally:
            await server.stop()

    asyncio.run(run())
    (node, site) = from_inventory()
    assert node == ("node", "now with a note", None)
    assert site[:2] == ("site", "")
    assert site[2] is not None
    assert [(w["scope"], w["source"]) for w in listed(db)] == [("node", "inventory"),
                                                               ("segment", "cli")]  # fmt: skip
    # Where the items run is stored too: reports resolve node windows without the file.
    with connect(db, readonly=True) as conn:
        assert stored_place(conn, "vm-web") == ItemPlace("vm-web", ("vm1", "hv1"), "seg1", "fra")
    refused = collector("maintenance", "cancel", "1", "--db", str(db))
    assert refused.returncode == 2
    assert "comes from the inventory file; remove it there" in refused.stderr
