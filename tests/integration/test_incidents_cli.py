"""``slawatch-collector incidents`` on a real store: the JSON shape the lab tests parse,
the table, filters, overrides beside the verdict, and clear errors for bad times."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import subprocess
import time
from pathlib import Path

from collector.attribution.model import (
    AffectedItem,
    AttributionResult,
    Confidence,
    EvidenceLine,
    Incident,
    IncidentKind,
    Root,
    RootScope,
)
from collector.sla.model import HOUR, MINUTE, SECOND, Cause
from collector.store.sqlite import Store
from tests.conftest import COLLECTOR_CMD

# Whole seconds, two hours ago: inside the default --since 24h.
BASE = (time.time_ns() // SECOND) * SECOND - 2 * HOUR


def _collector(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COLLECTOR_CMD, *argv], capture_output=True, text=True, timeout=60)


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns // SECOND, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _hypervisor_down(end: int, cause: Cause = Cause.HOST, open_: bool = False) -> Incident:
    evidence = (
        EvidenceLine("agent", "hv1's agent silent, then a new boot id", "hv1", "", "local", 0,
                     BASE, BASE + 5 * MINUTE),
        EvidenceLine("check", "icmp to vm1 failed from every vantage", "outside", "icmp-vm1",
                     "outside", 30, BASE, end),
    )  # fmt: skip
    return Incident(
        kind=IncidentKind.OUTAGE, root=Root(RootScope.NODE, "hv1"), cause=cause, start_ns=BASE,
        end_ns=end, items=("hv1-panel",), affected=(AffectedItem("vm1-web", "vm1", "hv1"),),
        confidence=Confidence.MEDIUM, evidence=evidence, missing=("hv1's host check",),
        open=open_,
    )  # fmt: skip


def _web_down() -> Incident:
    return Incident(
        kind=IncidentKind.OUTAGE, root=Root(RootScope.ITEM, "srv-web"), cause=Cause.SERVICE,
        start_ns=BASE + 30 * MINUTE, end_ns=BASE + 40 * MINUTE, items=("srv-web",), affected=(),
        confidence=Confidence.HIGH,
        evidence=(EvidenceLine("check", "http refused locally and remotely"),),
    )  # fmt: skip


def _store(tmp_path: Path) -> Path:
    """Two runs: the first sees the hypervisor down and open, the second closes it with a
    revised cause; the web incident of the first run is withdrawn by the second."""
    db = tmp_path / "c.db"
    store = Store(db)
    start, end = BASE - HOUR, BASE + HOUR

    async def runs() -> None:
        first = AttributionResult(start, BASE + 45 * MINUTE,
                                  (_hypervisor_down(BASE + 45 * MINUTE, open_=True),
                                   _web_down()), {})  # fmt: skip
        await store.save_attribution(first, BASE + 45 * MINUTE)
        second = AttributionResult(start, end, (_hypervisor_down(BASE + 20 * MINUTE,
                                                                 Cause.NETWORK),), {})  # fmt: skip
        await store.save_attribution(second, end)

    try:
        asyncio.run(runs())
    finally:
        store.close()
    with sqlite3.connect(db) as conn:
        conn.execute(
            # Columns named: later store versions add some (with defaults).
            "INSERT INTO overrides (item_id, start_ns, end_ns, cause, reason, created_ns) "
            "VALUES ('vm1-web', ?, ?, 'host', 'provider admitted a PSU fault', ?)",
            (BASE, BASE + 20 * MINUTE, BASE + HOUR),
        )
    return db


def test_json_shape(tmp_path: Path) -> None:
    db = _store(tmp_path)
    done = _collector("incidents", "--db", str(db), "--format", "json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert set(listing) == {"generated", "incidents"}
    (incident,) = listing["incidents"]
    expected_keys = {"id", "version", "kind", "cause", "observed_cause", "root", "start", "end",
                     "start_ns", "end_ns", "open", "items", "affected", "confidence", "evidence",
                     "missing", "override", "history"}  # fmt: skip
    assert expected_keys <= set(incident)
    assert incident["id"] == "inc-hv1-" + dt.datetime.fromtimestamp(
        BASE // SECOND, dt.UTC
    ).strftime("%Y%m%dT%H%M%S")
    assert (incident["version"], incident["kind"], incident["cause"]) == (2, "outage", "network")
    assert incident["root"] == {"scope": "node", "id": "hv1"}
    assert (incident["start"], incident["end"]) == (_iso(BASE), _iso(BASE + 20 * MINUTE))
    assert (incident["start_ns"], incident["end_ns"], incident["open"]) == (
        BASE, BASE + 20 * MINUTE, False
    )  # fmt: skip
    assert incident["items"] == ["hv1-panel"]
    assert incident["affected"] == [{"item": "vm1-web", "node": "vm1", "via": "hv1"}]
    assert incident["confidence"] == "medium"
    assert incident["missing"] == ["hv1's host check"]
    assert incident["evidence"][1] == {
        "signal": "check", "text": "icmp to vm1 failed from every vantage", "agent": "outside",
        "check": "icmp-vm1", "vantage": "outside", "observations": 30, "first": _iso(BASE),
        "last": _iso(BASE + 20 * MINUTE),
    }  # fmt: skip
    assert incident["override"] == {
        "cause": "host", "reason": "provider admitted a PSU fault", "item": "vm1-web",
        "start": _iso(BASE), "end": _iso(BASE + 20 * MINUTE),
    }  # fmt: skip
    history = [(v["version"], v["cause"], v["end_ns"], v["withdrawn"]) for v in incident["history"]]
    assert history == [(1, "host", None, False), (2, "network", BASE + 20 * MINUTE, False)]
    assert set(incident["history"][0]) == {"version", "computed_ns", "cause", "root", "start_ns",
                                           "end_ns", "withdrawn"}  # fmt: skip


def test_withdrawn_incidents_only_when_asked(tmp_path: Path) -> None:
    db = _store(tmp_path)
    done = _collector("incidents", "--db", str(db), "--format", "json", "--withdrawn")
    assert done.returncode == 0, done.stderr
    shown = {i["root"]["id"]: i for i in json.loads(done.stdout)["incidents"]}
    assert set(shown) == {"hv1", "srv-web"}
    assert shown["srv-web"]["withdrawn"] is True
    assert [v["withdrawn"] for v in shown["srv-web"]["history"]] == [False, True]


def test_service_item_and_time_filters(tmp_path: Path) -> None:
    db = _store(tmp_path)

    def ids(*argv: str) -> list[str]:
        done = _collector("incidents", "--db", str(db), "--format", "json", "--withdrawn", *argv)
        assert done.returncode == 0, done.stderr
        return [i["root"]["id"] for i in json.loads(done.stdout)["incidents"]]

    assert ids("--service-item", "vm1-web") == ["hv1"]  # affected counts
    assert ids("--service-item", "srv-web") == ["srv-web"]
    assert ids("--service-item", "nothing") == []
    assert ids("--since", _iso(BASE + 25 * MINUTE)) == ["srv-web"]
    assert ids("--since", "7d", "--until", _iso(BASE + 25 * MINUTE)) == ["hv1"]
    assert ids("--since", "30m") == []


def test_table(tmp_path: Path) -> None:
    db = _store(tmp_path)
    done = _collector("incidents", "--db", str(db), "--history")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    head = next(line for line in lines if line.startswith("inc-hv1-"))
    for part in ("  network  ", "(20m00s)", "root node hv1", "medium", "v2"):
        assert part in head
    assert "    items: hv1-panel, vm1-web (affected via hv1)" in lines
    assert (
        "    - check: icmp to vm1 failed from every vantage  [outside icmp-vm1 outside 30 obs]"
        in (lines)
    )
    assert any(line.startswith("    override (vm1-web): host from") for line in lines)
    assert any(line.startswith("    v1 computed") and "host" in line for line in lines)
    assert "srv-web" not in done.stdout  # withdrawn


def test_bad_times_are_named(tmp_path: Path) -> None:
    db = _store(tmp_path)
    done = _collector("incidents", "--db", str(db), "--since", "yesterday")
    assert done.returncode == 2
    assert "--since" in done.stderr
    assert "'yesterday' is neither a time ago" in done.stderr
    done = _collector("incidents", "--db", str(db), "--since", "1h", "--until", "2h")
    assert done.returncode == 2
    assert "--until" in done.stderr
    assert "is not after --since 1h" in done.stderr
    done = _collector("incidents", "--db", str(tmp_path / "missing.db"))
    assert done.returncode == 2
    assert "missing.db" in done.stderr


def test_a_store_from_before_incidents_lists_none(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE agents (agent_id TEXT)")
    done = _collector("incidents", "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "(no incidents)\n"


def _overrides(db: Path) -> list[tuple[str, str]]:
    found = json.loads(_collector("override", "list", "--db", str(db), "--format", "json").stdout)
    return sorted((o["service_item"], o["cause"]) for o in found["overrides"])


def test_an_incident_is_overridden_whole_and_keeps_its_measured_verdict(tmp_path: Path) -> None:
    db = _store(tmp_path)
    (listed,) = json.loads(_collector("incidents", "--db", str(db), "--format", "json").stdout)[
        "incidents"
    ]
    incident_id, start, end = listed["id"], listed["start_ns"], listed["end_ns"]
    argv = ["override", "incident", incident_id, "--cause", "force_majeure",
            "--reason", "flood in the data centre", "--by", "ops", "--db", str(db)]  # fmt: skip
    # vm1-web has an override of that very span already: refused, and nothing stored.
    refused = _collector(*argv)
    assert refused.returncode == 2
    assert "'vm1-web' already has an override for that span" in refused.stderr
    assert _overrides(db) == [("vm1-web", "host")]
    removed = _collector("override", "remove", "--service-item", "vm1-web", "--start", str(start),
                         "--end", str(end), "--db", str(db))  # fmt: skip
    assert removed.returncode == 0, removed.stderr

    done = _collector(*argv)
    assert done.returncode == 0, done.stderr
    assert "force_majeure for hv1-panel, vm1-web" in done.stdout
    assert _overrides(db) == [("hv1-panel", "force_majeure"), ("vm1-web", "force_majeure")]
    (again,) = json.loads(_collector("incidents", "--db", str(db), "--format", "json").stdout)[
        "incidents"
    ]
    assert again["cause"] == "network"  # measured, unchanged
    assert again["override"]["cause"] == "force_majeure"
    assert again["override"]["reason"] == "flood in the data centre"


def test_overriding_an_unknown_or_open_incident_is_refused(tmp_path: Path) -> None:
    db = _store(tmp_path)
    unknown = _collector("override", "incident", "inc-nope", "--cause", "host", "--reason", "x",
                         "--db", str(db))  # fmt: skip
    assert unknown.returncode == 2
    assert "there is no incident 'inc-nope'" in unknown.stderr
    elsewhere = Incident(
        kind=IncidentKind.OUTAGE, root=Root(RootScope.NODE, "hv9"), cause=Cause.HOST,
        start_ns=BASE + 2 * HOUR, end_ns=BASE + 3 * HOUR, items=("hv9-panel",), affected=(),
        confidence=Confidence.MEDIUM, evidence=(), open=True,
    )  # fmt: skip
    store = Store(db)
    run = AttributionResult(BASE + 90 * MINUTE, BASE + 3 * HOUR, (elsewhere,), {})
    asyncio.run(store.save_attribution(run, BASE + 3 * HOUR))
    store.close()
    with sqlite3.connect(db) as conn:
        (open_id,) = conn.execute("SELECT id FROM incidents WHERE root_id='hv9'").fetchone()
    refused = _collector("override", "incident", open_id, "--cause", "host", "--reason", "x",
                         "--db", str(db))  # fmt: skip
    assert refused.returncode == 2
    assert "is still open" in refused.stderr
