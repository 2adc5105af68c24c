"""slawatch / Collector: the collector itself."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.models import units

from deploy.monitoring.dashboards.panels import (
    ORANGE,
    RED,
    Item,
    Look,
    Query,
    dashboard,
    heatmap_panel,
    row,
    stat_panel,
    timeseries_panel,
)
from deploy.monitoring.dashboards.promql import increase, mean, or_zero, quantile, rate

UID = "slawatch-collector"
ACK = "slawatch_ingest_ack_latency_seconds"
COMMIT = "slawatch_store_commit_duration_seconds"
LAST_SUCCESS = "slawatch_attribution_last_success_timestamp_seconds"
OPS = Look(unit=units.OpsPerSecond, min=0)
PER_SECOND = Look(unit=units.CountsPerSecond, min=0)


def build() -> dict[str, Any]:
    return dashboard(
        UID,
        "slawatch / Collector",
        "The collector itself: ingest, ack latency, store commits, attribution runs, "
        "inventory reloads and the per-check series budget.",
        [],
        [*_overview(), *_ingest(), *_writes(), *_attribution(), *_budget()],
    )


def _latency(histogram: str) -> list[Query]:
    quantiles = [Query(quantile(q, histogram), f"p{q * 100:g}") for q in (0.5, 0.9, 0.99)]
    return [*quantiles, Query(mean(histogram), "mean")]


def _overview() -> list[Item]:
    # A timestamp of 0 is "no successful run yet", not 55 years ago.
    since_success = f"time() - {LAST_SUCCESS} and {LAST_SUCCESS} > 0"
    refused = increase("slawatch_inventory_reloads_total", 'result="invalid"')
    return [
        row("Overview"),
        stat_panel(
            "Observations stored",
            "Observations stored per second.",
            [Query(rate("slawatch_ingest_observations_total"))],
            Look(unit=units.OpsPerSecond),
            (6, 4),
        ),
        stat_panel(
            "Ack latency p99",
            "99th percentile of the time from a batch's arrival to its ack.",
            [Query(quantile(0.99, ACK))],
            Look(unit=units.Seconds, thresholds=((1, ORANGE), (5, RED))),
            (6, 4),
        ),
        stat_panel(
            "Since last attribution",
            "Time since the last successful attribution run; it runs every 30 s by default, "
            "SlawatchAttributionStale fires after 10 minutes.",
            [Query(since_success)],
            Look(unit=units.Seconds, thresholds=((120, ORANGE), (600, RED)), no_value="none yet"),
            (6, 4),
        ),
        stat_panel(
            "Inventory reloads refused",
            "Inventory reloads refused as invalid in the time range (SlawatchInventoryInvalid).",
            [Query(or_zero(refused))],
            Look(unit=units.Short, decimals=0, thresholds=((1, RED),)),
            (6, 4),
        ),
    ]


def _ingest() -> list[Item]:
    return [
        row("Ingest"),
        timeseries_panel(
            "Observations stored",
            "Observations stored per second.",
            [Query(rate("slawatch_ingest_observations_total"), "stored")],
            OPS,
            (8, 8),
        ),
        timeseries_panel(
            "Batches by result",
            "Batches accepted, duplicate (resent, stored already) and rejected, per second.",
            [Query(rate("slawatch_ingest_batches_total", by="result"), "{{result}}")],
            PER_SECOND,
            (8, 8),
        ),
        timeseries_panel(
            "Rejections by rule",
            "Rejections per second by the rule that refused them.",
            [Query(rate("slawatch_ingest_rejections_total", by="rule"), "{{rule}}")],
            PER_SECOND,
            (8, 8),
        ),
    ]


def _writes() -> list[Item]:
    return [
        row("Ack latency and commits"),
        timeseries_panel(
            "Ack latency",
            "From a batch's arrival to its ack (stored and committed): what the agents wait for.",
            _latency(ACK),
            Look(unit=units.Seconds, min=0),
        ),
        heatmap_panel(
            "Ack latency distribution",
            "Every ack by its latency bucket.",
            rate(f"{ACK}_bucket", by="le"),
            units.Seconds,
            (12, 8),
        ),
        timeseries_panel(
            "Store commit time",
            "Time to commit one group of writes to the store.",
            _latency(COMMIT),
            Look(unit=units.Seconds, min=0),
        ),
        timeseries_panel(
            "Store commits",
            "Group commits per second.",
            [Query(rate(f"{COMMIT}_count"), "commits")],
            OPS,
        ),
    ]


def _attribution() -> list[Item]:
    return [
        row("Attribution"),
        timeseries_panel(
            "Attribution runs",
            "Runs started and runs failed, per second (the log says why a run failed).",
            [
                Query(rate("slawatch_attribution_runs_total"), "runs"),
                Query(rate("slawatch_attribution_run_failures_total"), "failures"),
            ],
            OPS,
            (8, 8),
        ),
        timeseries_panel(
            "Attribution run duration",
            "How long the last run took (reading the store, attributing, saving); near "
            "--attribution-interval it cannot keep up (docs/performance.md).",
            [Query("slawatch_attribution_last_run_duration_seconds", "last run")],
            Look(unit=units.Seconds, min=0),
            (8, 8),
        ),
        timeseries_panel(
            "Incident changes",
            "Incidents the runs stored, per second: new, revised, extended, withdrawn.",
            [Query(rate("slawatch_attribution_incident_changes_total", by="change"), "{{change}}")],
            OPS,
            (8, 8),
        ),
    ]


def _budget() -> list[Item]:
    per_agent = 'scalar(slawatch_metrics_check_series_limit{limit="per_agent"})'
    total = 'scalar(slawatch_metrics_check_series_limit{limit="total"})'
    return [
        row("Series budget and inventory"),
        timeseries_panel(
            "Check series used",
            "Each agent's exported checks as a share of --max-check-series-per-agent, and all "
            "agents' of --max-check-series (docs/metrics.md, Per check).",
            [
                Query(f"slawatch_metrics_check_series / {per_agent}", "{{agent}}"),
                Query(f"sum(slawatch_metrics_check_series) / {total}", "all agents"),
            ],
            Look(unit=units.PercentUnit, min=0, max=1, thresholds=((0.9, RED),)),
            (8, 8),
        ),
        timeseries_panel(
            "Observations not exported",
            "Observations of checks refused a series, per second, by agent and limit.",
            [
                Query(
                    rate("slawatch_metrics_series_limited_total", by="agent, limit"),
                    "{{agent}} {{limit}}",
                )
            ],
            PER_SECOND,
            (8, 8),
        ),
        timeseries_panel(
            "Inventory reloads",
            "Inventory reloads per second by result: ok, or invalid (refused, the previous "
            "inventory kept).",
            [Query(rate("slawatch_inventory_reloads_total", by="result"), "{{result}}")],
            PER_SECOND,
            (8, 8),
        ),
    ]
