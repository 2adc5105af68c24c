"""The attribution runner on a real store: the range each run covers (lookback, late
data, open incidents), incidents saved through the writer, failures counted and
survived, and what it keeps for the metrics.

The attributor is given by the test: the engine has its own tests; these are about
when the runner calls it, over which range, and what it does with the result.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from collector.attribution.model import (
    AttributionResult,
    Confidence,
    Incident,
    IncidentKind,
    ItemState,
    Root,
    RootScope,
)
from collector.attribution.runner import AttributionRunner, attribute_from_store, month_start_ns
from collector.inventory import Inventory, inventory_from_mapping
from collector.sla.model import DAY, HOUR, MINUTE, SECOND, Cause
from collector.store.incidents import SaveSummary, current_incidents
from collector.store.sqlite import Store
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up

NOW = 1_767_225_600 * SECOND + 3 * DAY  # 2026-01-04T00:00:00Z
INVENTORY = cast(Inventory, object())  # handed through to the attributor untouched


class Recorder:
    """An attributor that records the ranges it was asked for and answers in turn."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.incidents: tuple[Incident, ...] = ()
        self.fail: Exception | None = None

    def __call__(
        self, conn: sqlite3.Connection, inventory: Inventory, start_ns: int, end_ns: int
    ) -> AttributionResult:
        assert inventory is INVENTORY
        # A read-only connection: attribution never writes the store itself.
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("CREATE TABLE x (a)")
        self.ranges.append((start_ns, end_ns))
        if self.fail is not None:
            raise self.fail
        states = {"web": ItemState.DOWN if self.incidents else ItemState.UP}
        return AttributionResult(start_ns, end_ns, self.incidents, states)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    the_store = Store(tmp_path / "c.db")
    yield the_store
    the_store.close()


def runner_for(store: Store, recorder: Recorder, clock: Clock) -> AttributionRunner:
    return AttributionRunner(store, lambda: INVENTORY, interval=1.0, lookback_ns=6 * HOUR,
                             attributor=recorder, clock=clock)  # fmt: skip


def open_outage(start: int, end: int) -> Incident:
    return Incident(kind=IncidentKind.OUTAGE, root=Root(RootScope.ITEM, "web"), cause=Cause.SERVICE,
                    start_ns=start, end_ns=end, items=("web",), affected=(),
                    confidence=Confidence.HIGH, evidence=(), open=True)  # fmt: skip


def old_batch(start_ns: int) -> up.ObservationBatch:
    batch = up.ObservationBatch(sequence=1)
    batch.observations.add(
        check_id="c", kind=pb.CHECK_KIND_TCP, target="t:1", start_unix_ns=start_ns,
        outcome=pb.OUTCOME_OK, packets_sent=1, packets_received=1,
    )  # fmt: skip
    return batch


def test_runs_cover_the_lookback_and_reach_back_for_late_data(store: Store) -> None:
    recorder, clock = Recorder(), Clock()
    runner = runner_for(store, recorder, clock)

    async def scenario() -> None:
        await runner.run_once()
        # A partitioned agent uploads its spool: observations from 9 hours ago.
        await store.write_batch("a", 1, old_batch(NOW - 9 * HOUR), NOW)
        clock.now += 2 * SECOND
        await runner.run_once()
        clock.now += 2 * SECOND
        await runner.run_once()

    asyncio.run(scenario())
    assert recorder.ranges == [
        (NOW - 6 * HOUR, NOW),
        (NOW - 9 * HOUR, NOW + 2 * SECOND),  # reaches the late data
        (NOW + 4 * SECOND - 6 * HOUR, NOW + 4 * SECOND),  # covered: back to the lookback
    ]


def test_late_data_seen_by_a_failed_run_is_covered_by_the_next(store: Store) -> None:
    recorder, clock = Recorder(), Clock()
    runner = runner_for(store, recorder, clock)

    async def scenario() -> None:
        await store.write_batch("a", 1, old_batch(NOW - 9 * HOUR), NOW)
        recorder.fail = RuntimeError("engine broke")
        assert await runner.run_once() is None
        recorder.fail = None
        await runner.run_once()

    asyncio.run(scenario())
    assert [start for start, _end in recorder.ranges] == [NOW - 9 * HOUR] * 2


def test_a_stale_open_incident_is_reached(store: Store) -> None:
    """The collector was stopped for a day while an incident was open: the next run
    starts where that incident was last seen, so it can close or extend it."""
    recorder, clock = Recorder(), Clock()
    runner = runner_for(store, recorder, clock)
    recorder.incidents = (open_outage(NOW - 2 * HOUR, NOW),)

    async def scenario() -> None:
        assert await runner.run_once() == SaveSummary(new=1)
        clock.now += DAY
        recorder.incidents = ()
        # Nothing from where it was last seen on: it ended there.
        assert await runner.run_once() == SaveSummary(revised=1)

    asyncio.run(scenario())
    assert recorder.ranges[1] == (NOW, NOW + DAY)
    with sqlite3.connect(store.path) as conn:
        assert conn.execute(
            "SELECT version, end_ns FROM incidents WHERE current = 1"
        ).fetchall() == [(2, NOW)]


def test_a_failing_run_is_counted_and_the_runner_goes_on(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    recorder, clock = Recorder(), Clock()
    recorder.fail = RuntimeError("engine broke")
    runner = AttributionRunner(store, lambda: INVENTORY, interval=0.05, attributor=recorder,
                               clock=clock)  # fmt: skip

    async def scenario() -> None:
        task = asyncio.create_task(runner.run())
        # Bounded: at most 2 s for the failing runs to repeat.
        for _ in range(200):
            if runner.stats.failures >= 2:
                break
            await asyncio.sleep(0.01)
        recorder.fail = None
        recorder.incidents = (open_outage(NOW - HOUR, NOW),)
        for _ in range(200):
            if runner.states:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert runner.stats.failures >= 2
    assert runner.stats.runs > runner.stats.failures
    assert runner.stats.last_success_unix > 0
    assert runner.states == {"web": ItemState.DOWN}
    assert "attribution run failed: RuntimeError: engine broke" in caplog.text
    assert runner.totals.open_counts == {(Cause.SERVICE, IncidentKind.OUTAGE): 1}
    assert runner.totals.month_seconds == {("web", IncidentKind.OUTAGE, Cause.SERVICE): 3600.0}
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT count(*) FROM incidents").fetchone()[0] == 1


def test_month_start_is_utc() -> None:
    assert month_start_ns(NOW) == 1_767_225_600 * SECOND
    assert month_start_ns(1_767_225_600 * SECOND - MINUTE) == 1_764_547_200 * SECOND


# -- with the real engine --------------------------------------------------------

T1 = 1_800_000_000 * SECOND
# Node n runs the web server and agent a (checking it locally); agent b checks it from
# a peer node. The web server refuses connections in [T1+60s, T1+120s).
TWO_VANTAGES = {
    "sites": [{"id": "s", "segments": [{"id": "g", "nodes": [
        {"id": "n", "address": "198.18.1.1", "agent": "a"},
        {"id": "p", "address": "198.18.1.2", "agent": "b"},
    ]}]}],
    "services": [{"id": "web", "node": "n", "owner": "acme", "contract": "closte"}],
    "agents": {"a": {"checks": [{"id": "web", "kind": "http", "service": "web"}]},
               "b": {"checks": [{"id": "web-peer", "kind": "http", "service": "web"}]}},
}  # fmt: skip


def _web_batch(check: str, sequence: int, start: int) -> up.ObservationBatch:
    """Ten seconds of an http check every 2 s."""
    batch = up.ObservationBatch(sequence=sequence, window_start_unix_ns=start,
                                window_end_unix_ns=start + 10 * SECOND)  # fmt: skip
    for t in range(start, start + 10 * SECOND, 2 * SECOND):
        down = T1 + 60 * SECOND <= t < T1 + 120 * SECOND
        batch.observations.add(
            check_id=check, kind=pb.CHECK_KIND_HTTP, target="http://n/", start_unix_ns=t,
            duration_ns=SECOND // 10, outcome=pb.OUTCOME_REFUSED if down else pb.OUTCOME_OK,
            error_class=pb.ERROR_CLASS_CONNECT_REFUSED if down else pb.ERROR_CLASS_NONE,
        )  # fmt: skip
    return batch


def test_the_engine_s_verdict_is_revised_when_a_partitioned_spool_arrives(store: Store) -> None:
    """Agent a is cut off from the collector for 100 s, during which its web server
    refuses; the peer sees the refusals at once. The first verdict lacks a's view; when
    a's spool arrives (older than the 30 s lookback), the run reaches back and the
    incident gets a new version with the local evidence: same id, history kept."""
    inventory = inventory_from_mapping(TWO_VANTAGES)
    clock = Clock()
    ranges: list[tuple[int, int]] = []

    def engine(conn: sqlite3.Connection, inv: Inventory, start: int, end: int) -> AttributionResult:
        ranges.append((start, end))
        return attribute_from_store(conn, inv, start, end)

    runner = AttributionRunner(store, lambda: inventory, lookback_ns=30 * SECOND,
                               attributor=engine, clock=clock)  # fmt: skip
    states: list[ItemState] = []

    async def scenario() -> None:
        held: list[up.ObservationBatch] = []
        for n, step in enumerate(range(0, 260, 10), start=1):
            t = T1 + step * SECOND
            await store.write_batch("b", 1, _web_batch("web-peer", n, t), t + 10 * SECOND)
            a_batch = _web_batch("web", n, t)
            if 40 <= step < 140:
                held.append(a_batch)  # partitioned: stays in a's spool
            else:
                await store.write_batch("a", 1, a_batch, t + 10 * SECOND)
            if step == 200:
                for late in held:
                    await store.write_batch("a", 1, late, t + 10 * SECOND)
            clock.now = t + 10 * SECOND
            await runner.run_once()
            states.append(runner.states["web"])

    asyncio.run(scenario())
    assert runner.stats.failures == 0
    # Down while refusing (runs after steps 60..110), up before and after.
    assert states[6:12] == [ItemState.DOWN] * 6
    assert states[:6] + states[12:] == [ItemState.UP] * (26 - 6)
    # The run after the spool arrived reached back to a's oldest late observation.
    assert ranges[20] == (T1 + 40 * SECOND, T1 + 210 * SECOND)
    assert ranges[21] == (T1 + 220 * SECOND - 30 * SECOND, T1 + 220 * SECOND)
    with sqlite3.connect(store.path) as conn:
        (stored,) = current_incidents(conn, T1, T1 + HOUR)
    # Named after the first version's root and start; kept when the root changed.
    assert stored.id == "inc-" + stored.history[0].root.id + "-20270115T080100"
    incident = stored.incident
    assert (incident.cause, incident.root) == (Cause.SERVICE, Root(RootScope.ITEM, "web"))
    assert (incident.start_ns, incident.end_ns, incident.open) == (
        T1 + 60 * SECOND, T1 + 120 * SECOND, False
    )  # fmt: skip
    history = [(v.version, v.cause, v.end_ns) for v in stored.history]
    assert len(history) >= 2
    assert history[0][1] is not Cause.SERVICE  # before a's view arrived
    assert history[0][2] is None  # first stored open, then closed
    assert history[-1] == (stored.version, Cause.SERVICE, T1 + 120 * SECOND)
