"""Attribution for Prometheus and Grafana: each service item's state, its downtime this
month by cause, open incidents, and the runner's health.

Everything comes from what the runner (collector/attribution/runner.py) keeps after
its last successful run: the item states of that run, and totals it read from the
stored incidents. A scrape reads no store.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.attribution.model import IncidentKind, ItemState
from collector.attribution.runner import IncidentTotals, RunnerStats
from collector.sla.model import Cause
from collector.store.incidents import Change

__all__ = ["AttributionCollector", "AttributionSource"]


class AttributionSource(Protocol):
    """What the collector reads: an AttributionRunner."""

    @property
    def stats(self) -> RunnerStats: ...

    @property
    def states(self) -> dict[str, ItemState]: ...

    @property
    def totals(self) -> IncidentTotals: ...


class AttributionCollector(Collector):
    def __init__(self, source: AttributionSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        yield from self._items()
        yield from self._incidents()
        yield from self._health()

    def _items(self) -> Iterator[Metric]:
        # kube-state-metrics' way: every state a series, 1 on the current one. A state
        # change then moves a 1 between series instead of starting a new one.
        state = GaugeMetricFamily(
            "slawatch_service_item_state",
            "1 for the service item's state at the last attribution run, 0 for the others.",
            labels=["service_item", "state"],
        )
        for item, current in sorted(self._source.states.items()):
            for candidate in ItemState:
                state.add_metric([item, candidate.value], float(candidate is current))
        yield state

    def _incidents(self) -> Iterator[Metric]:
        totals = self._source.totals
        downtime = GaugeMetricFamily(
            "slawatch_service_item_downtime_seconds",
            "Time this UTC month the service item was in an outage, by attributed cause.",
            labels=["service_item", "cause"],
        )
        degraded = GaugeMetricFamily(
            "slawatch_service_item_degraded_seconds",
            "Time this UTC month the service item was degraded (excess packet loss), by cause.",
            labels=["service_item", "cause"],
        )
        for (item, kind, cause), seconds in sorted(totals.month_seconds.items()):
            family = downtime if kind is IncidentKind.OUTAGE else degraded
            family.add_metric([item, cause.value], seconds)
        open_now = GaugeMetricFamily(
            "slawatch_incidents_open",
            "Incidents open now, by cause and kind.",
            labels=["cause", "kind"],
        )
        # Every pair, zeros too: an alert on "> 0" needs the series to exist.
        for cause in Cause:
            for kind in IncidentKind:
                open_now.add_metric(
                    [cause.value, kind.value], totals.open_counts.get((cause, kind), 0)
                )
        yield from (downtime, degraded, open_now)

    def _health(self) -> Iterator[Metric]:
        stats = self._source.stats
        runs = CounterMetricFamily("slawatch_attribution_runs", "Attribution runs started.")
        runs.add_metric([], stats.runs)
        failures = CounterMetricFamily(
            "slawatch_attribution_run_failures", "Attribution runs that failed (see the log)."
        )
        failures.add_metric([], stats.failures)
        duration = GaugeMetricFamily(
            "slawatch_attribution_last_run_duration_seconds",
            "How long the last attribution run took, reading, attributing and saving.",
        )
        duration.add_metric([], stats.last_duration_s)
        success = GaugeMetricFamily(
            "slawatch_attribution_last_success_timestamp_seconds",
            "When the last successful attribution run ended (0: none yet).",
        )
        success.add_metric([], stats.last_success_unix)
        changes = CounterMetricFamily(
            "slawatch_attribution_incident_changes",
            "Incidents stored by the runs, by change: new, revised, extended, withdrawn.",
            labels=["change"],
        )
        for change in Change:
            if change is not Change.UNCHANGED:
                changes.add_metric([change.value], stats.changes.get(change.value, 0))
        yield from (runs, failures, duration, success, changes)
