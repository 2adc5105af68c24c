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
from collector.attribution.runner import AttributionRunner, month_start_ns
from collector.inventory import Inventory
from collector.sla.model import DAY, HOUR, MINUTE, SECOND, Cause
from collector.store.incidents import SaveSummary
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
