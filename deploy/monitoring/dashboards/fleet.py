"""slawatch / Fleet: the agents, as the collector sees them."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.models import units

from deploy.monitoring.dashboards.panels import (
    GREEN,
    ORANGE,
    RED,
    Column,
    Item,
    Look,
    Query,
    bargauge_panel,
    dashboard,
    row,
    stat_panel,
    table_panel,
    timeseries_panel,
    variable,
)
from deploy.monitoring.dashboards.promql import increase, or_zero, rate, series

UID = "slawatch-fleet"
AGENT = 'agent=~"$agent"'
DAY = 86400
# The alerts' thresholds (deploy/monitoring/rules/slawatch-fleet.rules.yml).
SILENT_AFTER = 45
SERVER_CERT_WARN = 14 * DAY
# An agent's name in the table opens the explorer on it, same data source and time.
EXPLORER = (
    "/d/slawatch-loss-latency/?var-datasource=${datasource}"
    "&var-agent=${__value.raw}&${__url_time_range}"
)
COUNT = Look(unit=units.Short, decimals=0)
ALARM = Look(unit=units.Short, decimals=0, thresholds=((1, RED),))


def build() -> dict[str, Any]:
    agent = variable(
        "agent", "Agent", "label_values(slawatch_agent_connected, agent)", all_value=".*"
    )
    return dashboard(
        UID,
        "slawatch / Fleet",
        "The agents: connected or silent, what the collector refused and they dropped, "
        "their own footprint, and certificates.",
        [agent],
        [*_overview(), *_agents(), *_losses(), *_footprint(), *_certificates()],
    )


def _heartbeat_age() -> str:
    return f"time() - {series('slawatch_agent_last_heartbeat_timestamp_seconds', AGENT)}"


def _overview() -> list[Item]:
    silent = f"count({_heartbeat_age()} > {SILENT_AFTER})"
    rejected = increase("slawatch_ingest_batches_total", 'result="rejected"')
    return [
        row("Overview"),
        stat_panel(
            "Agents connected",
            "Agents with an open uplink stream now.",
            [Query(f"sum({series('slawatch_agent_connected', AGENT)})")],
            COUNT,
        ),
        stat_panel(
            "Agents silent",
            f"Agents whose last heartbeat is more than {SILENT_AFTER} s old "
            "(SlawatchAgentSilent): their checks are not measured or not delivered.",
            [Query(or_zero(silent))],
            ALARM,
        ),
        stat_panel(
            "Batches rejected",
            "Batches the collector refused as invalid in the time range; the agents keep "
            "them aside (SlawatchBatchesRejected).",
            [Query(or_zero(rejected))],
            ALARM,
        ),
        stat_panel(
            "Observations dropped",
            "Observations the agents dropped from their spools unsent in the time range: "
            "evidence missing from SLA reports (SlawatchSpoolDrops).",
            [Query(or_zero(increase("slawatch_agent_observations_dropped_total", AGENT)))],
            ALARM,
        ),
        stat_panel(
            "Checks not exported",
            "Observations in the time range of checks beyond a series budget: stored, but "
            "not in /metrics, so not on these dashboards (SlawatchCheckSeriesLimited).",
            [Query(or_zero(increase("slawatch_metrics_series_limited_total", AGENT)))],
            Look(unit=units.Short, decimals=0, thresholds=((1, ORANGE),)),
        ),
        stat_panel(
            "Next agent certificate expiry",
            "The soonest expiry of an agent's client certificate.",
            [
                Query(
                    f"min({series('slawatch_agent_certificate_expiry_timestamp_seconds', AGENT)})"
                    " * 1000"
                )
            ],
            Look(unit=units.DateTimeFromNow),
        ),
    ]


def _agents() -> list[Item]:
    return [
        row("Agents"),
        table_panel(
            "Agents",
            "Each agent now, with the config version it last answered a push for. Its name "
            "opens the loss and latency explorer on it.",
            ["agent", "version", "accepted"],
            [
                Column(series("slawatch_agent_connected", AGENT), "connected", units.Short),
                Column(_heartbeat_age(), "heartbeat age", units.Seconds),
                Column(
                    f"increase({series('slawatch_agent_sessions_total', AGENT)}[$__range])",
                    "streams opened",
                    units.Short,
                ),
                Column(
                    series("slawatch_agent_resident_memory_bytes", AGENT), "RSS", units.BytesIEC
                ),
                Column(
                    f"rate({series('slawatch_agent_cpu_seconds_total', AGENT)}[$__rate_interval])",
                    "CPU",
                    units.PercentUnit,
                ),
                Column(
                    series("slawatch_agent_certificate_expiry_timestamp_seconds", AGENT)
                    + " * 1000",
                    "certificate expires",
                    units.DateTimeFromNow,
                ),
                Column(
                    series("slawatch_agent_config_info", AGENT), "config", units.Short, shown=False
                ),
            ],
            (24, 9),
            links={"agent": EXPLORER},
        ),
        timeseries_panel(
            "Heartbeat age",
            f"Seconds since each agent's last heartbeat; above {SILENT_AFTER} s it is silent.",
            [Query(_heartbeat_age(), "{{agent}}")],
            Look(unit=units.Seconds, min=0, thresholds=((SILENT_AFTER, RED),)),
        ),
        timeseries_panel(
            "Streams opened",
            "Uplink streams each agent opened per second: after the first, each is a reconnect.",
            [Query(rate("slawatch_agent_sessions_total", AGENT, "agent"), "{{agent}}")],
            Look(unit=units.CountsPerSecond, min=0),
        ),
    ]


def _losses() -> list[Item]:
    return [
        row("Rejections and spool drops"),
        timeseries_panel(
            "Batches by result",
            "Batches the collector accepted, saw again (a resend) or rejected, per second.",
            [Query(rate("slawatch_ingest_batches_total", by="result"), "{{result}}")],
            Look(unit=units.CountsPerSecond, min=0),
        ),
        timeseries_panel(
            "Rejections by rule",
            "Why the collector refused batches or streams, per second (rules: "
            "collector/ingest/validate.py; revoked: a revoked certificate).",
            [Query(rate("slawatch_ingest_rejections_total", by="rule"), "{{rule}}")],
            Look(unit=units.CountsPerSecond, min=0),
        ),
        timeseries_panel(
            "Spool drops by reason",
            "Batches the agents dropped unsent, per second: size (spool.max_bytes), age "
            "(spool.max_age), rejected (refused by the collector, kept aside).",
            [
                Query(
                    rate("slawatch_agent_batches_dropped_total", AGENT, "agent, reason"),
                    "{{agent}} {{reason}}",
                )
            ],
            Look(unit=units.CountsPerSecond, min=0),
        ),
        timeseries_panel(
            "Observations dropped",
            "Observations lost from each agent's spool, per second, as the agents report them.",
            [Query(rate("slawatch_agent_observations_dropped_total", AGENT, "agent"), "{{agent}}")],
            Look(unit=units.CountsPerSecond, min=0),
        ),
    ]


def _footprint() -> list[Item]:
    return [
        row("Agent footprint"),
        timeseries_panel(
            "Agent RSS",
            "Resident memory of each agent process.",
            [Query(series("slawatch_agent_resident_memory_bytes", AGENT), "{{agent}}")],
            Look(unit=units.BytesIEC, min=0),
            (8, 8),
        ),
        timeseries_panel(
            "Agent CPU",
            "CPU time of each agent process per second (100 % is one core).",
            [Query(rate("slawatch_agent_cpu_seconds_total", AGENT, "agent"), "{{agent}}")],
            Look(unit=units.PercentUnit, min=0),
            (8, 8),
        ),
        timeseries_panel(
            "Rounds skipped",
            "Rounds skipped per second because the previous one overran: the agent's "
            "checks are too many or too slow for their intervals.",
            [Query(rate("slawatch_agent_rounds_skipped_total", AGENT, "agent"), "{{agent}}")],
            Look(unit=units.CountsPerSecond, min=0),
            (8, 8),
        ),
        timeseries_panel(
            "Node load",
            "1-minute load average of each agent's node.",
            [Query(series("slawatch_node_load1", AGENT), "{{agent}}")],
            Look(unit=units.Short, min=0),
        ),
        timeseries_panel(
            "Node memory in use",
            "Share of each agent's node memory in use.",
            [Query(series("slawatch_node_memory_used_ratio", AGENT), "{{agent}}")],
            Look(unit=units.PercentUnit, min=0, max=1),
        ),
    ]


def _time_left(metric: str) -> str:
    """Seconds until each certificate expires, soonest first."""
    return f"sort({series(metric, AGENT)} - time())"


def _certificates() -> list[Item]:
    return [
        row("Certificates"),
        bargauge_panel(
            "Agent certificates: time left",
            "Until each agent's client certificate expires, soonest first; the agent role "
            "renews them (pki issue --renew-within).",
            [Query(_time_left("slawatch_agent_certificate_expiry_timestamp_seconds"), "{{agent}}")],
            Look(
                unit=units.Seconds,
                base_color=RED,
                thresholds=((7 * DAY, ORANGE), (30 * DAY, GREEN)),
                min=0,
            ),
        ),
        bargauge_panel(
            "Server certificates seen by checks: time left",
            "Until the certificate each HTTP, SMTP or POP3 check sees expires, soonest "
            "first (SlawatchProbedCertificateExpiring below 14 days).",
            [
                Query(
                    _time_left("slawatch_probe_tls_cert_expiry_timestamp_seconds"),
                    "{{target}} ({{agent}}/{{check}})",
                )
            ],
            Look(
                unit=units.Seconds,
                base_color=RED,
                thresholds=((SERVER_CERT_WARN, ORANGE), (30 * DAY, GREEN)),
                min=0,
            ),
        ),
    ]
