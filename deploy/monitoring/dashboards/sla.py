"""slawatch / SLA: each service item's month so far, under its contract."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.models import units

from deploy.monitoring.dashboards.panels import (
    GREEN,
    GREY,
    ORANGE,
    RED,
    Column,
    Item,
    Look,
    Query,
    State,
    bargauge_panel,
    dashboard,
    row,
    stat_panel,
    state_timeline_panel,
    table_panel,
    timeseries_panel,
    variable,
)
from deploy.monitoring.dashboards.promql import one_hot, series

UID = "slawatch-sla"
ITEM = 'service_item=~"$service_item"'
STATES = (
    State(1, "up", GREEN),
    State(2, "degraded", ORANGE),
    State(3, "down", RED),
    State(4, "unknown", GREY),
)
DURATION = Look(unit=units.DurationSeconds, min=0)


def build() -> dict[str, Any]:
    item = variable(
        "service_item",
        "Service item",
        "label_values(slawatch_sla_availability_ratio, service_item)",
        all_value=".*",
    )
    return dashboard(
        UID,
        "slawatch / SLA",
        "Each service item's month so far under its policy: availability against the "
        "target, the error budget, downtime by cause (counted and excluded), credits, and "
        "what is open now.",
        [item],
        [*_month(), *_open(), *_downtime(), *_history()],
        # The SLA metrics are this month so far; the graphs show the same month.
        since="now/M",
    )


def _downtime_counted(counted: str, by: str) -> str:
    selector = f'{ITEM}, counted="{counted}"'
    return f"sum by ({by}) ({series('slawatch_sla_downtime_seconds', selector)})"


def _month() -> list[Item]:
    availability = series("slawatch_sla_availability_ratio", ITEM)
    target = series("slawatch_sla_target_ratio", ITEM)
    budget = series("slawatch_sla_error_budget_remaining_ratio", ITEM)
    return [
        row("This month"),
        bargauge_panel(
            "Availability above target",
            "Availability so far this month minus the policy's target: below 0 the item "
            "misses its SLA.",
            [
                Query(
                    f"sort({availability} - on (service_item, policy) {target})", "{{service_item}}"
                )
            ],
            Look(unit=units.PercentUnit, base_color=RED, thresholds=((0, GREEN),), decimals=3),
        ),
        bargauge_panel(
            "Error budget left",
            "Share of the month's downtime budget ((1 - target) x scheduled time) still "
            "unused; below 0 when overspent.",
            [Query(f"sort({budget})", "{{service_item}}")],
            Look(
                unit=units.PercentUnit,
                base_color=RED,
                thresholds=((0, ORANGE), (0.25, GREEN)),
                min=-1,
                max=1,
            ),
        ),
        table_panel(
            "Service items this month",
            "Each item under its policy (the contract's time zone and exclusions); no data "
            "is time without any result for the item, degraded is Excess Packet Loss.",
            ["service_item", "policy"],
            [
                Column(availability, "availability", units.PercentUnit),
                Column(target, "target", units.PercentUnit),
                Column(budget, "budget left", units.PercentUnit),
                Column(
                    _downtime_counted("true", "service_item, policy"),
                    "downtime counted",
                    units.DurationSeconds,
                ),
                Column(
                    series("slawatch_sla_unknown_seconds", ITEM), "no data", units.DurationSeconds
                ),
                Column(
                    series("slawatch_sla_degraded_seconds", ITEM), "degraded", units.DurationSeconds
                ),
            ],
            (24, 8),
        ),
    ]


def _open() -> list[Item]:
    return [
        row("Credits and open incidents"),
        stat_panel(
            "Credits owed",
            "What this month's outages earn so far, summed per currency.",
            [Query(f"sum by (currency) ({series('slawatch_sla_credit', ITEM)})", "{{currency}}")],
            Look(unit=units.Short, decimals=2, no_value="none"),
            (8, 5),
        ),
        stat_panel(
            "Open incidents",
            "Incidents open now, over every item (attribution's view).",
            [
                Query('sum(slawatch_incidents_open{kind="outage"})', "outages"),
                Query('sum(slawatch_incidents_open{kind="degraded"})', "degraded"),
            ],
            Look(unit=units.Short, decimals=0, thresholds=((1, RED),)),
            (6, 5),
        ),
        bargauge_panel(
            "Open incidents by cause",
            "Incidents open now by attribution's cause and kind.",
            [
                Query(
                    "sort_desc(sum by (cause, kind) (slawatch_incidents_open) > 0)",
                    "{{cause}} {{kind}}",
                )
            ],
            Look(unit=units.Short, decimals=0, no_value="none open"),
            (10, 5),
        ),
        table_panel(
            "Items in an open outage",
            "The service items down now, with the cause of their open outage.",
            ["service_item", "cause"],
            [Column(series("slawatch_service_item_outage", ITEM) + " == 1", "open", units.Short)],
            (24, 6),
        ),
    ]


def _downtime() -> list[Item]:
    def by_cause(counted: str) -> Query:
        return Query(f"sort_desc({_downtime_counted(counted, 'cause')})", "{{cause}}")

    attributed = f"sum by (cause) ({series('slawatch_service_item_downtime_seconds', ITEM)})"
    return [
        row("Downtime by cause"),
        bargauge_panel(
            "Downtime counted",
            "Downtime this month that counts against the SLA, by cause.",
            [by_cause("true")],
            DURATION,
            (8, 8),
        ),
        bargauge_panel(
            "Downtime excluded",
            "Downtime this month the policy excludes (maintenance, the customer's own, "
            "force majeure …), by cause.",
            [by_cause("false")],
            DURATION,
            (8, 8),
        ),
        bargauge_panel(
            "Outage time by attribution",
            "Time this UTC month the items spent in an outage, by attribution's cause, "
            "before any policy.",
            [Query(f"sort_desc({attributed})", "{{cause}}")],
            DURATION,
            (8, 8),
        ),
    ]


def _history() -> list[Item]:
    codes = {s.text: s.value for s in STATES}
    state = one_hot("slawatch_service_item_state", ITEM, "state", codes, "service_item")
    return [
        row("Over time"),
        state_timeline_panel(
            "Item state",
            "Each item's state at the end of every attribution run.",
            Query(state, "{{service_item}}"),
            STATES,
        ),
        timeseries_panel(
            "Availability so far this month",
            "Availability under the policy as the month went, with each item's target.",
            [
                Query(series("slawatch_sla_availability_ratio", ITEM), "{{service_item}}"),
                Query(series("slawatch_sla_target_ratio", ITEM), "{{service_item}} target"),
            ],
            Look(unit=units.PercentUnit, decimals=3, max=1),
        ),
        timeseries_panel(
            "Counted downtime by cause",
            "Downtime this month that counts, by cause, as it grew.",
            [Query(_downtime_counted("true", "cause"), "{{cause}}")],
            DURATION,
            stacked=True,
        ),
    ]
