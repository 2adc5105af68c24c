"""Incidents in the store: matched to stored ones, versioned only when the verdict
changes, grown in place while open, withdrawn when late data shows no outage, and
nothing outside the run's range touched."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

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
from collector.errors import StoreError
from collector.sla.model import HOUR, MINUTE, SECOND, Cause
from collector.store.incidents import (
    SaveSummary,
    current_incidents,
    item_verdicts,
    month_seconds,
    oldest_open_until,
    open_incident_counts,
    save_run,
)
from collector.store.sqlite import Store, connect, migrate

T0 = 1_767_225_600 * SECOND  # 2026-01-01T00:00:00Z
ROOT = Root(RootScope.NODE, "hv1")


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    path = tmp_path / "c.db"
    connection = connect(path)
    migrate(connection, path)
    yield connection
    connection.close()


def outage(
    start: int = T0 + 10 * MINUTE,
    end: int = T0 + 20 * MINUTE,
    *,
    cause: Cause = Cause.HOST,
    open_: bool = False,
    root: Root = ROOT,
    items: tuple[str, ...] = ("hv1-item",),
    affected: tuple[AffectedItem, ...] = (AffectedItem("vm1-web", "vm1", "hv1"),),
    observations: int = 10,
    kind: IncidentKind = IncidentKind.OUTAGE,
) -> Incident:
    line = EvidenceLine("agent", "hv1's agent silent", "hv1", "", "local", observations,
                        start, end)  # fmt: skip
    return Incident(kind=kind, root=root, cause=cause, start_ns=start, end_ns=end, items=items,
                    affected=affected, confidence=Confidence.HIGH, evidence=(line,),
                    open=open_)  # fmt: skip


def run(
    conn: sqlite3.Connection,
    *incidents: Incident,
    start: int = T0,
    end: int = T0 + HOUR,
    now: int | None = None,
) -> SaveSummary:
    result = AttributionResult(start, end, tuple(incidents), {})
    conn.execute("BEGIN")
    summary = save_run(conn, result, end if now is None else now)
    conn.execute("COMMIT")
    return summary


def versions(conn: sqlite3.Connection) -> list[tuple[str, int, int, str, int, int | None]]:
    return conn.execute(
        "SELECT id, version, current, cause, withdrawn, end_ns FROM incidents ORDER BY id, version"
    ).fetchall()


def test_a_new_incident_gets_a_readable_id_and_version_1(conn: sqlite3.Connection) -> None:
    assert run(conn, outage()) == SaveSummary(new=1)
    assert versions(conn) == [("inc-hv1-20260101T001000", 1, 1, "host", 0, T0 + 20 * MINUTE)]
    (stored,) = current_incidents(conn, T0, T0 + HOUR)
    assert stored.incident == outage()
    assert [v.version for v in stored.history] == [1]


def test_the_same_verdict_again_writes_nothing(conn: sqlite3.Connection) -> None:
    run(conn, outage())
    assert run(conn, outage(), now=T0 + 2 * HOUR) == SaveSummary(unchanged=1)
    assert len(versions(conn)) == 1


def test_an_open_incident_that_grows_is_updated_in_place(conn: sqlite3.Connection) -> None:
    run(conn, outage(end=T0 + 20 * MINUTE, open_=True), end=T0 + 20 * MINUTE)
    for minute in (21, 22, 23):
        grown = outage(end=T0 + minute * MINUTE, open_=True, observations=minute)
        assert run(conn, grown, end=T0 + minute * MINUTE) == SaveSummary(extended=1)
    assert versions(conn) == [("inc-hv1-20260101T001000", 1, 1, "host", 0, None)]
    (stored,) = current_incidents(conn, T0, T0 + HOUR)
    assert stored.incident.end_ns == T0 + 23 * MINUTE
    assert stored.incident.evidence[0].observations == 23
    # The item index follows the growth: the verdict covers minute 22.
    verdicts = item_verdicts(conn, "vm1-web", T0 + 22 * MINUTE, T0 + 23 * MINUTE)
    assert [(v.start_ns, v.end_ns, v.cause) for v in verdicts] == [
        (T0 + 10 * MINUTE, T0 + 23 * MINUTE, Cause.HOST)
    ]


def test_closing_an_open_incident_is_a_new_version(conn: sqlite3.Connection) -> None:
    run(conn, outage(open_=True), end=T0 + 20 * MINUTE)
    assert run(conn, outage(end=T0 + 25 * MINUTE)) == SaveSummary(revised=1)
    assert [(v, cur, end) for _i, v, cur, _c, _w, end in versions(conn)] == [
        (1, 0, None), (2, 1, T0 + 25 * MINUTE)
    ]  # fmt: skip


def test_a_revised_cause_keeps_the_id_and_the_history(conn: sqlite3.Connection) -> None:
    run(conn, outage(cause=Cause.HOST))
    # Late data: the node's agent was fine, the segment's uplink was cut.
    network = outage(cause=Cause.NETWORK, start=T0 + 11 * MINUTE)
    assert run(conn, network, now=T0 + 2 * HOUR) == SaveSummary(revised=1)
    (stored,) = current_incidents(conn, T0, T0 + HOUR)
    assert stored.id == "inc-hv1-20260101T001000"
    assert stored.version == 2
    assert stored.incident.cause is Cause.NETWORK
    assert stored.computed_ns == T0 + 2 * HOUR
    assert [(v.version, v.cause, v.start_ns) for v in stored.history] == [
        (1, Cause.HOST, T0 + 10 * MINUTE),
        (2, Cause.NETWORK, T0 + 11 * MINUTE),
    ]
    assert [v.cause for v in item_verdicts(conn, "hv1-item", T0, T0 + HOUR)] == [Cause.NETWORK]


@pytest.mark.parametrize(
    "change",
    [
        {"confidence": Confidence.LOW},
        {"root": Root(RootScope.SEGMENT, "seg-a")},
        {"affected": ()},
        {"items": ("hv1-item", "hv1-panel")},
        {"observed_cause": Cause.HOST, "cause": Cause.MAINTENANCE},
        {"end_ns": T0 + 21 * MINUTE},
    ],
    ids=["confidence", "root", "affected", "items", "maintenance", "closed-end"],
)
def test_each_part_of_a_verdict_makes_a_new_version(
    conn: sqlite3.Connection, change: dict[str, object]
) -> None:
    run(conn, outage())
    assert run(conn, replace(outage(), **change)) == SaveSummary(revised=1)  # type: ignore[arg-type]


def test_a_matching_incident_needs_kind_time_and_a_shared_item_or_root(
    conn: sqlite3.Connection,
) -> None:
    run(conn, outage())
    other_kind = outage(kind=IncidentKind.DEGRADED)
    later = outage(start=T0 + 30 * MINUTE, end=T0 + 40 * MINUTE)
    unrelated = outage(root=Root(RootScope.NODE, "srv2"), items=("srv2-web",), affected=())
    summary = run(conn, outage(), other_kind, later, unrelated)
    assert summary == SaveSummary(new=3, unchanged=1)
    ids = sorted(s.id for s in current_incidents(conn, T0, T0 + HOUR))
    assert ids == [
        "inc-hv1-20260101T001000",
        "inc-hv1-20260101T001000-2",  # the degraded one: same root and start, own id
        "inc-hv1-20260101T003000",
        "inc-srv2-20260101T001000",
    ]


def test_a_shared_item_matches_across_a_new_root(conn: sqlite3.Connection) -> None:
    run(conn, outage())
    segment = outage(root=Root(RootScope.SEGMENT, "seg-a"), items=(),
                     affected=(AffectedItem("hv1-item", "hv1", "seg-a"),))  # fmt: skip
    assert run(conn, segment) == SaveSummary(revised=1)
    (stored,) = current_incidents(conn, T0, T0 + HOUR)
    assert stored.id == "inc-hv1-20260101T001000"
    assert stored.incident.root == Root(RootScope.SEGMENT, "seg-a")


def test_touching_incidents_match(conn: sqlite3.Connection) -> None:
    run(conn, outage(end=T0 + 20 * MINUTE, open_=True), end=T0 + 20 * MINUTE)
    # The next run sees the incident starting right where the stored one was seen to.
    shifted = outage(start=T0 + 20 * MINUTE, end=T0 + 21 * MINUTE, open_=True)
    summary = run(conn, shifted, start=T0 + 20 * MINUTE, end=T0 + 21 * MINUTE)
    assert summary == SaveSummary(extended=1)
    (stored,) = current_incidents(conn, T0, T0 + HOUR)
    assert (stored.incident.start_ns, stored.incident.end_ns) == (T0 + 10 * MINUTE,
                                                                  T0 + 21 * MINUTE)  # fmt: skip


def test_an_incident_late_data_refutes_is_withdrawn(conn: sqlite3.Connection) -> None:
    run(conn, outage())
    # The node was only partitioned from the collector; its spool shows it was up.
    assert run(conn, now=T0 + 2 * HOUR) == SaveSummary(withdrawn=1)
    assert [(v, cur, w) for _i, v, cur, _c, w, _e in versions(conn)] == [(1, 0, 0), (2, 1, 1)]
    assert current_incidents(conn, T0, T0 + HOUR) == []
    assert item_verdicts(conn, "vm1-web", T0, T0 + HOUR) == []
    (shown,) = current_incidents(conn, T0, T0 + HOUR, withdrawn=True)
    assert shown.withdrawn
    assert [v.withdrawn for v in shown.history] == [False, True]
    # A withdrawn incident is not matched again: recomputing it makes a new one.
    assert run(conn, outage()) == SaveSummary(new=1)


def test_nothing_outside_the_range_is_touched(conn: sqlite3.Connection) -> None:
    early = outage(start=T0 + 10 * MINUTE, end=T0 + 20 * MINUTE)
    crossing = outage(start=T0 + 50 * MINUTE, end=T0 + 70 * MINUTE, items=("srv2-web",),
                      root=Root(RootScope.NODE, "srv2"), affected=())  # fmt: skip
    run(conn, early, crossing, end=T0 + 2 * HOUR)
    # A run over [T0+1h, T0+2h) that finds nothing: the early incident lies before the
    # range, the crossing one began before it; neither is withdrawn.
    assert run(conn, start=T0 + HOUR, end=T0 + 2 * HOUR) == SaveSummary()
    assert [w for *_rest, w, _e in versions(conn)] == [0, 0]


def test_an_open_incident_before_the_range_that_the_run_does_not_see_is_closed(
    conn: sqlite3.Connection,
) -> None:
    run(conn, outage(start=T0 + 10 * MINUTE, end=T0 + 50 * MINUTE, open_=True),
        end=T0 + 50 * MINUTE)  # fmt: skip
    # The next run covers [T0+30m, T0+55m) and finds no outage: it ended at T0+30m.
    assert run(conn, start=T0 + 30 * MINUTE, end=T0 + 55 * MINUTE) == SaveSummary(revised=1)
    (stored,) = current_incidents(conn, T0, T0 + HOUR)
    assert (stored.version, stored.incident.open) == (2, False)
    assert (stored.incident.start_ns, stored.incident.end_ns) == (T0 + 10 * MINUTE,
                                                                  T0 + 30 * MINUTE)  # fmt: skip


def test_an_incident_crossing_the_range_start_keeps_its_start_and_evidence(
    conn: sqlite3.Connection,
) -> None:
    first = replace(outage(start=T0 + 10 * MINUTE, end=T0 + 50 * MINUTE, open_=True),
                    evidence=(EvidenceLine("host finding", "disk full", "hv1", "host", "local",
                                           3, T0 + 10 * MINUTE, T0 + 12 * MINUTE),
                              *outage().evidence))  # fmt: skip
    run(conn, first, end=T0 + 50 * MINUTE)
    # The next run starts at T0+30m: it sees the incident from there on, without the
    # early host finding.
    clipped = outage(start=T0 + 30 * MINUTE, end=T0 + 55 * MINUTE, open_=True)
    assert run(conn, clipped, start=T0 + 30 * MINUTE, end=T0 + 55 * MINUTE) == SaveSummary(
        extended=1
    )
    (stored,) = current_incidents(conn, T0, T0 + HOUR)
    assert stored.incident.start_ns == T0 + 10 * MINUTE
    assert stored.incident.end_ns == T0 + 55 * MINUTE
    signals = {e.signal: e for e in stored.incident.evidence}
    assert signals["host finding"].text == "disk full"
    assert signals["agent"].first_ns == T0 + 10 * MINUTE
    assert signals["agent"].last_ns == T0 + 55 * MINUTE


def test_an_incident_split_by_late_data_keeps_its_id_on_the_first_part(
    conn: sqlite3.Connection,
) -> None:
    run(conn, outage(start=T0 + 10 * MINUTE, end=T0 + 40 * MINUTE))
    parts = (outage(start=T0 + 10 * MINUTE, end=T0 + 20 * MINUTE),
             outage(start=T0 + 30 * MINUTE, end=T0 + 40 * MINUTE))  # fmt: skip
    assert run(conn, *parts) == SaveSummary(new=1, revised=1)
    ids = [(s.id, s.version) for s in current_incidents(conn, T0, T0 + HOUR)]
    assert ids == [("inc-hv1-20260101T001000", 2), ("inc-hv1-20260101T003000", 1)]


def test_reads_for_the_sla_engine_and_the_metrics(conn: sqlite3.Connection) -> None:
    run(
        conn,
        outage(start=T0 + 10 * MINUTE, end=T0 + 20 * MINUTE),
        outage(start=T0 + 15 * MINUTE, end=T0 + 30 * MINUTE, root=Root(RootScope.SEGMENT, "s"),
               items=(), affected=(AffectedItem("vm1-web", "vm1", "s"),), cause=Cause.NETWORK,
               open_=True),
        outage(start=T0 + 40 * MINUTE, end=T0 + 45 * MINUTE, kind=IncidentKind.DEGRADED,
               cause=Cause.UPSTREAM, items=(), affected=(AffectedItem("vm1-web", "vm1", "hv1"),),
               root=Root(RootScope.PATH, "egress")),
    )  # fmt: skip
    verdicts = item_verdicts(conn, "vm1-web", T0, T0 + HOUR)
    assert [(v.cause, v.start_ns) for v in verdicts] == [
        (Cause.HOST, T0 + 10 * MINUTE), (Cause.NETWORK, T0 + 15 * MINUTE)
    ]  # fmt: skip
    # Whole incidents, not clipped to the span asked for.
    (host,) = item_verdicts(conn, "hv1-item", T0 + 12 * MINUTE, T0 + 13 * MINUTE)
    assert (host.start_ns, host.end_ns) == (T0 + 10 * MINUTE, T0 + 20 * MINUTE)
    seconds = month_seconds(conn, T0 + 12 * MINUTE, T0 + HOUR)
    assert seconds == {
        ("hv1-item", IncidentKind.OUTAGE, Cause.HOST): 8 * 60.0,
        ("vm1-web", IncidentKind.OUTAGE, Cause.HOST): 8 * 60.0,
        ("vm1-web", IncidentKind.OUTAGE, Cause.NETWORK): 15 * 60.0,
        ("vm1-web", IncidentKind.DEGRADED, Cause.UPSTREAM): 5 * 60.0,
    }
    assert open_incident_counts(conn) == {(Cause.NETWORK, IncidentKind.OUTAGE): 1}
    assert oldest_open_until(conn) == T0 + 30 * MINUTE
    only_vm = current_incidents(conn, T0, T0 + HOUR, "hv1-item")
    assert [s.incident.cause for s in only_vm] == [Cause.HOST]


def test_a_failed_run_keeps_nothing(tmp_path: Path) -> None:
    """Through the store's writer: one savepoint per run."""
    store = Store(tmp_path / "s.db")
    try:
        # The second incident cannot be stored (a cause that is no Cause): the first,
        # already inserted, must go too.
        broken = replace(outage(start=T0 + 30 * MINUTE), cause="bogus")  # type: ignore[arg-type]
        result = AttributionResult(T0, T0 + HOUR, (outage(), broken), {})
        with pytest.raises(StoreError):
            asyncio.run(store.save_attribution(result, T0 + HOUR))
        good = AttributionResult(T0, T0 + HOUR, (outage(),), {})
        assert asyncio.run(store.save_attribution(good, T0 + HOUR)) == SaveSummary(new=1)
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "s.db") as check:
        assert check.execute("SELECT id, version FROM incidents").fetchall() == [
            ("inc-hv1-20260101T001000", 1)
        ]


def test_two_incidents_that_could_continue_one_stored_resolve_the_same_way_every_run(
    conn: sqlite3.Connection,
) -> None:
    """A short one of another cause touching a long one, same root and item: whichever
    order a run lists them in, each keeps its own id and no version is added."""
    sliver = outage(T0 + 10 * MINUTE, T0 + 10 * MINUTE + 2 * SECOND, cause=Cause.NETWORK)
    main = outage(T0 + 10 * MINUTE, T0 + 20 * MINUTE, cause=Cause.SERVICE)
    run(conn, main, sliver)
    for order in ((sliver, main), (main, sliver), (sliver, main)):
        summary = run(conn, *order)
        assert summary.revised == 0, summary
    versions = conn.execute("SELECT id, max(version), cause FROM incidents GROUP BY id").fetchall()
    assert sorted((v, c) for _, v, c in versions) == [(1, "network"), (1, "service")]
