"""Per service item SLA state for Prometheus and Grafana: this month so far.

On a scrape, each service item's current month (in its policy's time zone) is
evaluated from the store, at most once per ``CACHE_SECONDS``: an evaluation
reads a month of results, far more than a scrape should cost every 15 s.
Time after now is unknown, so availability is "so far this month".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.errors import CollectorError
from collector.sla.model import ItemMonth
from collector.sla.report import evaluate_current_months

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
_ITEM = ["service_item", "policy"]


def error_budget_remaining(month: ItemMonth) -> float:
    """1 when no downtime counted, 0 when it used the whole budget, below 0 beyond."""
    budget = (1.0 - month.target) * month.scheduled_ns
    if budget <= 0:
        return 0.0 if month.counted_down_ns else 1.0
    return 1.0 - month.counted_down_ns / budget


class SlaCollector(Collector):
    def __init__(
        self,
        db_path: Path,
        policy_dirs: tuple[Path, ...] = (),
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._db_path = db_path
        self._policy_dirs = policy_dirs
        self._clock = clock
        self._lock = threading.Lock()  # scrapes come on the HTTP server's threads
        self._cached: list[ItemMonth] = []
        self._cached_at = float("-inf")

    def _months(self) -> list[ItemMonth]:
        with self._lock:
            if time.monotonic() - self._cached_at >= CACHE_SECONDS:
                self._cached_at = time.monotonic()
                try:
                    self._cached = evaluate_current_months(
                        self._db_path, self._clock(), self._policy_dirs
                    )
                except CollectorError as exc:
                    log.warning("SLA metrics not evaluated: %s", exc)
                    self._cached = []
            return self._cached

    def collect(self) -> Iterator[Metric]:
        availability = GaugeMetricFamily(
            "slawatch_sla_availability_ratio",
            "Availability so far this month under the item's policy.",
            labels=_ITEM,
        )
        target = GaugeMetricFamily(
            "slawatch_sla_target_ratio", "The policy's availability target.", labels=_ITEM
        )
        budget = GaugeMetricFamily(
            "slawatch_sla_error_budget_remaining_ratio",
            "Share of this month's downtime budget still unused (below 0: overspent).",
            labels=_ITEM,
        )
        downtime = GaugeMetricFamily(
            "slawatch_sla_downtime_seconds",
            "Downtime this month by cause, counted or excluded by the policy.",
            labels=[*_ITEM, "cause", "counted"],
        )
        unknown = GaugeMetricFamily(
            "slawatch_sla_unknown_seconds",
            "Time so far this month without any result for the item.",
            labels=_ITEM,
        )
        degraded = GaugeMetricFamily(
            "slawatch_sla_degraded_seconds",
            "Time this month with excess packet loss on the item's loss checks.",
            labels=_ITEM,
        )
        credit = GaugeMetricFamily(
            "slawatch_sla_credit",
            "The credit this month's outages earn so far, in the item's currency.",
            labels=[*_ITEM, "currency"],
        )
        for month in self._months():
            item = [month.item.id, month.policy]
            availability.add_metric(item, month.availability)
            target.add_metric(item, month.target)
            budget.add_metric(item, error_budget_remaining(month))
            # The rest of the month is unknown too, but not yet a gap in the data.
            ahead = max(0, month.period_end_ns - self._clock())
            unknown.add_metric(item, max(0, month.unknown_ns - ahead) / 1e9)
            credit.add_metric([*item, month.credit.currency], float(month.credit.amount))
            degraded.add_metric(item, month.degraded_ns / 1e9)
            for cause, totals in sorted(month.by_cause.items()):
                downtime.add_metric([*item, cause.value, "true"], totals.counted_ns / 1e9)
                downtime.add_metric([*item, cause.value, "false"], totals.excluded_ns / 1e9)
        yield from (availability, target, budget, downtime, unknown, degraded, credit)
