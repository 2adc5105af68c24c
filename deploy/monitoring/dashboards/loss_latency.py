"""slawatch / Loss and latency: the checks' measurements, explored.

Laid out after smokeping_prober's dashboard: a row per check with its RTT heatmap
beside its loss, repeated for every check selected.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.models import units

from deploy.monitoring.dashboards.panels import (
    BLUE,
    GREEN,
    ORANGE,
    RED,
    Column,
    Item,
    Look,
    Query,
    State,
    dashboard,
    heatmap_panel,
    row,
    state_timeline_panel,
    table_panel,
    timeseries_panel,
    variable,
)
from deploy.monitoring.dashboards.promql import loss, one_hot, quantile, rate, series

UID = "slawatch-loss-latency"
# The recording rule has no kind label; the check variable, filtered by kind, is.
CHECK = 'agent=~"$agent", check=~"$check", target=~"$target"'
PROBE = f'{CHECK}, kind=~"$kind"'
RULE = "slawatch:probe_loss_ratio:rate10m"
# Closte's Excess Packet Loss threshold, the alert's too.
LOSS_LIMIT = 0.01
LOSS = Look(unit=units.PercentUnit, min=0, decimals=2, thresholds=((LOSS_LIMIT, RED),))
PER_SECOND = Look(unit=units.CountsPerSecond, min=0)
PATH = "{{agent}} → {{target}} ({{check}})"
VERDICTS = (
    State(1, "clear", GREEN),
    State(2, "undecided", ORANGE),
    State(3, "excess", RED),
    State(4, "rate_limited", BLUE),
)


def build() -> dict[str, Any]:
    every = "slawatch_probe_last_round_timestamp_seconds"
    variables = [
        variable("agent", "Agent", f"label_values({every}, agent)", all_value=".*"),
        variable("kind", "Kind", f'label_values({every}{{agent=~"$agent"}}, kind)', all_value=".*"),
        variable(
            "check",
            "Check",
            f'label_values({every}{{agent=~"$agent", kind=~"$kind"}}, check)',
            all_value=None,
        ),
        variable(
            "target",
            "Target",
            f'label_values({every}{{agent=~"$agent", kind=~"$kind", check=~"$check"}}, target)',
            all_value=None,
        ),
    ]
    return dashboard(
        UID,
        "slawatch / Loss and latency",
        "Packet loss and round-trip times per check, the RTT distribution of each check "
        "(as smokeping_prober shows it), loss per hop of path checks, egress verdicts.",
        variables,
        [*_loss(), *_latency(), *_per_check(), *_paths(), *_egress()],
        since="now-24h",
    )


def _loss() -> list[Item]:
    return [
        row("Loss"),
        timeseries_panel(
            "Loss over 10 minutes",
            f"Loss of each check over the last 10 minutes (the recording rule {RULE}): what "
            "Excess Packet Loss (above 1 %) is judged on.",
            [Query(series(RULE, CHECK), PATH)],
            LOSS,
        ),
        timeseries_panel(
            "Loss per step",
            "Loss from the raw probe counters over each step of the graph: finer than 10 "
            "minutes when zoomed in.",
            [Query(loss(PROBE), PATH)],
            LOSS,
        ),
        table_panel(
            "Worst loss now",
            "The 20 checks with the most loss over the last 10 minutes; a check's name opens "
            "this dashboard on it alone.",
            ["agent", "check", "target"],
            [Column(f"topk(20, {series(RULE, CHECK)} > 0)", "loss", units.PercentUnit)],
            (24, 7),
            sort=("loss", True),
            links={
                "check": f"/d/{UID}/?var-datasource=${{datasource}}"
                "&var-check=${__value.raw}&${__url_time_range}"
            },
        ),
    ]


def _rtt(q: float) -> Query:
    expr = quantile(q, "slawatch_probe_rtt_seconds", PROBE, "agent, check")
    return Query(expr, f"p{q * 100:g} {{{{agent}}}}/{{{{check}}}}")


def _latency() -> list[Item]:
    return [
        row("Latency"),
        timeseries_panel(
            "RTT quantiles",
            "Median, 90th and 99th percentile of every answered probe's RTT (for http, smtp, "
            "pop3 the TCP connect, for dns the query).",
            [_rtt(0.5), _rtt(0.9), _rtt(0.99)],
            Look(unit=units.Seconds, min=0),
        ),
        timeseries_panel(
            "Rounds by outcome",
            "Rounds per second by outcome: ok, timeout, refused, unreachable, failed, error.",
            [Query(rate("slawatch_probe_rounds_total", PROBE, "outcome"), "{{outcome}}")],
            PER_SECOND,
            stacked=True,
        ),
        timeseries_panel(
            "Round errors by class",
            "Failed rounds per second by error class (docs/architecture.md).",
            [
                Query(
                    rate("slawatch_probe_round_errors_total", PROBE, "error_class"),
                    "{{error_class}}",
                )
            ],
            PER_SECOND,
            stacked=True,
        ),
        timeseries_panel(
            "Round duration",
            "How long each check's last round took.",
            [Query(series("slawatch_probe_duration_seconds", PROBE), "{{agent}}/{{check}}")],
            Look(unit=units.Seconds, min=0),
        ),
    ]


def _per_check() -> list[Item]:
    # Repeated per check, each copy with one check. Still "=~": Grafana regex-escapes
    # the value of a multi-value variable (a dot becomes \\.), which "=" would take
    # literally.
    one = PROBE
    return [
        row("RTT distribution: $check", repeat="check"),
        heatmap_panel(
            "RTT heatmap: $check",
            "Every answered probe of the check by its RTT bucket (25 µs doubling up to about "
            "13 s), over the selected agents and targets together: pick one agent to see "
            "one path.",
            rate("slawatch_probe_rtt_seconds_bucket", one, "le"),
            units.Seconds,
        ),
        timeseries_panel(
            "Loss: $check",
            "The check's loss per agent and target, from the raw counters.",
            [Query(loss(one), "{{agent}} → {{target}}")],
            LOSS,
            (8, 9),
        ),
    ]


def _paths() -> list[Item]:
    hops = series("slawatch_path_hop_loss_ratio", PROBE)
    return [
        row("Path checks"),
        table_panel(
            "Loss per hop (last trace)",
            "Each hop of every path check's last trace, by TTL: where the loss starts is "
            "where to look (docs/path.md).",
            ["agent", "check", "target", "ttl", "address"],
            [Column(hops, "loss", units.PercentUnit)],
            (16, 10),
            sort=("ttl", False),
            numeric_labels=["ttl"],
        ),
        timeseries_panel(
            "Path changes",
            "Path changes seen by each path check, per second.",
            [Query(rate("slawatch_path_changes_total", PROBE, "agent, check, target"), PATH)],
            PER_SECOND,
            (8, 10),
        ),
        timeseries_panel(
            "Loss per hop over time",
            "Each hop's loss in the path traces, by TTL and address.",
            [Query(hops, "{{agent}}/{{check}} ttl {{ttl}} {{address}}")],
            LOSS,
            (24, 8),
        ),
    ]


def _egress() -> list[Item]:
    codes = {s.text: s.value for s in VERDICTS}
    verdict = one_hot(
        "slawatch_egress_loss_verdict", PROBE, "verdict", codes, "agent, check, target"
    )
    return [
        row("Egress loss"),
        state_timeline_panel(
            "Egress verdicts",
            "Each egress check's verdict on its last window (docs/packet-loss.md): excess is "
            "loss above 1 % toward one hop past the border router with 95 % confidence, "
            "clear is below it, rate_limited is that hop dropping its own replies while "
            "the path beyond it is fine.",
            Query(verdict, PATH),
            VERDICTS,
            (24, 7),
        ),
        timeseries_panel(
            "Egress loss bounds",
            "The confidence interval of each egress check's loss on its last window: excess "
            "when the lower bound is above 1 %, clear when the upper one is below.",
            [
                Query(
                    series("slawatch_egress_loss_upper_ratio", PROBE), "{{agent}}/{{check}} upper"
                ),
                Query(
                    series("slawatch_egress_loss_lower_ratio", PROBE), "{{agent}}/{{check}} lower"
                ),
            ],
            LOSS,
            (24, 8),
        ),
    ]
