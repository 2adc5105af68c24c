"""Attribution inside the collector: every few seconds, the recent past is attributed
again and the incidents are stored as versions (collector/store/incidents.py).

Each run covers ``[start, now)``. ``start`` is ``now - lookback``, or earlier when

* batches stored since the last run carry older observations (an agent that was
  partitioned uploads its spool: the verdicts of that time may change), or
* an open incident was last seen before it (the collector was stopped while it
  was open: the run must reach it to close or extend it),

but never earlier than ``max_reach`` before now. The inventory is read afresh at
each run (it may have been reloaded). Reading the store and attributing run on a
worker thread with a read-only connection; saving goes through the store's writer.
A run that fails is logged and counted; the next one tries again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from collector.attribution.model import AttributionResult, IncidentKind, ItemState
from collector.inventory import Inventory
from collector.sla.model import DAY, HOUR, SECOND, Cause
from collector.store.incidents import (
    SaveSummary,
    month_seconds,
    oldest_open_until,
    open_incident_counts,
)
from collector.store.sqlite import Store, connect

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_LOOKBACK_NS",
    "AttributionRunner",
    "Attributor",
    "IncidentTotals",
    "RunnerStats",
    "attribute_from_store",
]

DEFAULT_INTERVAL = 30.0
# Each run re-reads and re-decides this much; longer costs CPU every run (docs/performance.md).
DEFAULT_LOOKBACK_NS = HOUR
# The farthest back a run reaches, whatever late data or open incidents ask for
# (the ingest refuses observations older than its own limit anyway).
MAX_REACH_NS = 40 * DAY

# Reads the store and attributes [start_ns, end_ns) over the inventory's topology.
Attributor = Callable[[sqlite3.Connection, Inventory, int, int], AttributionResult]


def attribute_from_store(
    conn: sqlite3.Connection, inventory: Inventory, start_ns: int, end_ns: int
) -> AttributionResult:
    """The engine over the store's signals (the default Attributor)."""
    from collector.attribution.engine import attribute
    from collector.attribution.signals import load_signals
    from collector.attribution.topology import topology_from_inventory

    topology = topology_from_inventory(inventory)
    signals = load_signals(conn, topology, start_ns, end_ns)
    return attribute(topology, signals, start_ns, end_ns)


@dataclass(frozen=True, slots=True)
class IncidentTotals:
    """What the metrics show of the stored incidents, read after each run."""

    # Seconds this UTC month so far, by (item, kind, cause).
    month_seconds: dict[tuple[str, IncidentKind, Cause], float] = field(default_factory=dict)
    open_counts: dict[tuple[Cause, IncidentKind], int] = field(default_factory=dict)


@dataclass(slots=True)
class RunnerStats:
    runs: int = 0
    failures: int = 0
    last_duration_s: float = 0.0
    last_success_unix: float = 0.0
    # Incident changes summed over the runs, by SaveSummary field.
    changes: dict[str, int] = field(default_factory=dict)


class AttributionRunner:
    def __init__(
        self,
        store: Store,
        inventory: Callable[[], Inventory],
        interval: float = DEFAULT_INTERVAL,
        lookback_ns: int = DEFAULT_LOOKBACK_NS,
        attributor: Attributor = attribute_from_store,
        clock: Callable[[], int] = time.time_ns,
        max_reach_ns: int = MAX_REACH_NS,
    ) -> None:
        self._store = store
        self._db_path: Path = store.path
        self._inventory = inventory
        self.interval = interval
        self.lookback_ns = lookback_ns
        self._attributor = attributor
        self._clock = clock
        self._max_reach_ns = max_reach_ns
        # Late data noted by the store but not yet covered by a successful run.
        self._pending_ns: int | None = None
        self.stats = RunnerStats()
        self.states: dict[str, ItemState] = {}
        self.totals = IncidentTotals()

    async def run(self) -> None:
        """Run every ``interval`` seconds until cancelled."""
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval)

    async def run_once(self) -> SaveSummary | None:
        """One run; None when it failed (logged and counted)."""
        started = time.perf_counter()
        self._note_late(self._store.take_earliest_stored())
        now = self._clock()
        self.stats.runs += 1
        try:
            result, start_ns = await asyncio.to_thread(self._attribute, now)
            summary = await self._store.save_attribution(result, now)
            self.totals = await asyncio.to_thread(self._read_totals, now)
        except Exception as exc:  # a run must never stop the collector
            self.stats.failures += 1
            self.stats.last_duration_s = time.perf_counter() - started
            log.error("attribution run failed: %s: %s", type(exc).__name__, exc)
            return None
        # Covered (or beyond max_reach): only newer late data widens a later run.
        self._pending_ns = None
        self.states = dict(result.states)
        self.stats.last_duration_s = time.perf_counter() - started
        self.stats.last_success_unix = time.time()
        for name, n in summary.counts().items():
            self.stats.changes[name] = self.stats.changes.get(name, 0) + n
        log.debug("attribution of the last %.0f s: %s", (now - start_ns) / SECOND, summary)
        return summary

    def _note_late(self, earliest_ns: int | None) -> None:
        if earliest_ns is not None and (self._pending_ns is None or earliest_ns < self._pending_ns):
            self._pending_ns = earliest_ns

    def _attribute(self, now_ns: int) -> tuple[AttributionResult, int]:
        conn = connect(self._db_path, readonly=True)
        try:
            start = now_ns - self.lookback_ns
            for earlier in (self._pending_ns, oldest_open_until(conn)):
                if earlier is not None:
                    start = min(start, earlier)
            start = max(start, now_ns - self._max_reach_ns)
            return self._attributor(conn, self._inventory(), start, now_ns), start
        finally:
            conn.close()

    def _read_totals(self, now_ns: int) -> IncidentTotals:
        conn = connect(self._db_path, readonly=True)
        try:
            month = month_start_ns(now_ns)
            return IncidentTotals(month_seconds(conn, month, now_ns), open_incident_counts(conn))
        finally:
            conn.close()


def month_start_ns(now_ns: int) -> int:
    """Start of the UTC calendar month ``now_ns`` is in."""
    now = dt.datetime.fromtimestamp(now_ns / SECOND, dt.UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return int(start.timestamp()) * SECOND
