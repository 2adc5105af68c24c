"""The SLA engine against hand-computed timelines, one rule of the agreements each.

Samples are written as strings, one character per test: "." passed, "x"
failed, " " no result. Every expected figure is worked out in the comment
beside it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from collector.sla.engine import evaluate, month_bounds
from collector.sla.model import (
    HOUR,
    MINUTE,
    Cause,
    CheckKey,
    Evidence,
    ItemMonth,
    MaintenanceKind,
    MaintenanceWindow,
    Override,
    Sample,
    ServiceItem,
    Ticket,
)
from collector.sla.policy import builtin_policies, policy_from_mapping

POLICIES = builtin_policies()
REPO = Path(__file__).resolve().parents[2]
WEB = CheckKey("node-1", "http")
SMTP = CheckKey("node-1", "smtp")
POP = CheckKey("node-1", "pop3")


def utc(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()) * 10**9


def eastern(text: str) -> int:
    zone = POLICIES["sonar"].zone
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()) * 10**9


def results(
    check: CheckKey,
    start_ns: int,
    pattern: str,
    interval_ns: int = MINUTE,
    cause: Cause | None = None,
) -> list[Sample]:
    return [
        Sample(check, start_ns + i * interval_ns, mark == ".", interval_ns,
               None if mark == "." else cause)
        for i, mark in enumerate(pattern)
        if mark != " "
    ]  # fmt: skip


def month_of_tests(
    check: CheckKey, month: str, policy: str, failures: dict[int, tuple[int, Cause | None]]
) -> list[Sample]:
    """A result every minute for the whole month; ``failures`` maps a start (ns) to a
    (count of consecutive failed tests, cause)."""
    start, end = month_bounds(month, POLICIES[policy])
    failing: dict[int, Cause | None] = {}
    for first, (count, cause) in failures.items():
        failing.update({first + i * MINUTE: cause for i in range(count)})
    return [
        Sample(check, t, t not in failing, MINUTE, failing.get(t))
        for t in range(start, end, MINUTE)
    ]


def item(
    policy: str, fee: str = "1000", checks: tuple[CheckKey, ...] = (WEB,), **extra: object
) -> ServiceItem:
    return ServiceItem("item-1", policy, Decimal(fee), "USD", checks, **extra)  # type: ignore[arg-type]


def run(
    policy: str, month: str, evidence: Evidence, service: ServiceItem | None = None
) -> ItemMonth:
    service = service or item(policy)
    return evaluate(service, POLICIES[policy], month, evidence)


# -- Sonoran -------------------------------------------------------------------


def test_sonoran_seed_example_one_hour_of_network_downtime_earns_1_39() -> None:
    """The agreement's own example: 1,000 USD a month, one hour of network downtime,
    (1 h) / (24 h x 30 days) x 1000 = 1.388... -> 1.39 USD. Network downtime is
    not part of server uptime, so availability stays 100%."""
    failures = {utc("2026-04-10T10:00:00"): (61, Cause.NETWORK)}  # 10:00..11:00: 60 minutes
    month = run(
        "sonoran-web", "2026-04", Evidence(month_of_tests(WEB, "2026-04", "sonoran-web", failures))
    )
    assert month.credit.amount == Decimal("1.39")
    assert month.availability == 1.0
    assert month.counted_down_ns == 0
    assert month.excluded_ns == 60 * MINUTE
    assert month.scheduled_ns == 30 * 24 * HOUR - 60 * MINUTE
    (outage,) = month.outages
    assert (outage.start_ns, outage.end_ns) == (
        utc("2026-04-10T10:00:00"),
        utc("2026-04-10T11:00:00"),
    )
    assert not outage.counted
    assert "6.3" in outage.rule
    assert outage.credited_ns == 60 * MINUTE
    # Claim within 72 hours of the incident.
    assert month.claim_deadline_ns == utc("2026-04-13T11:00:00")


def test_sonoran_short_runs_and_single_failures_are_not_downtime() -> None:
    """A run of 4 failed tests spans 3 minutes (< 5: not recorded); single failures
    are not downtime at all; a run of 6 (5 minutes) is."""
    start = utc("2026-04-01T00:00:00")
    pattern = "." * 10 + "xxxx" + "." * 10 + "x" + "." * 5 + "x" + "." * 10 + "xxxxxx" + "." * 10
    month = run(
        "sonoran-web", "2026-04", Evidence(results(WEB, start, pattern, cause=Cause.SERVICE))
    )
    (outage,) = month.outages
    assert outage.start_ns == start + 41 * MINUTE
    assert outage.duration_ns == 5 * MINUTE
    assert outage.counted


def test_sonoran_maintenance_beyond_two_hours_counts() -> None:
    """Down 01:00-04:00 inside an announced window: the first 2 h are the month's
    maintenance allowance, the third hour counts."""
    down = utc("2026-04-05T01:00:00")
    samples = month_of_tests(WEB, "2026-04", "sonoran-web", {down: (181, Cause.SERVICE)})
    window = MaintenanceWindow(None, down, down + 3 * HOUR, down - HOUR)
    month = run("sonoran-web", "2026-04", Evidence(tuple(samples), (window,)))
    assert [(o.cause, o.counted, o.duration_ns) for o in month.outages] == [
        (Cause.MAINTENANCE, False, 2 * HOUR),
        (Cause.MAINTENANCE, True, HOUR),
    ]
    assert "beyond the 2 h monthly maintenance allowance" in month.outages[1].rule
    assert month.counted_down_ns == HOUR
    assert month.availability == pytest.approx(1 - 60 / (30 * 1440 - 120))
    assert not month.met  # 99.86% < 99.9%
    assert month.credit.amount == Decimal("0.00")  # planned maintenance earns no credit


def test_sonoran_mail_two_checks_failing_at_once_count_once() -> None:
    """SMTP down 10:00-10:30 and POP3 down 10:10-10:40: the item is down 10:00-10:40."""
    start = utc("2026-04-02T10:00:00")
    smtp = results(SMTP, start, "x" * 31 + ".", cause=Cause.SERVICE)
    pop = results(POP, start, "." * 10 + "x" * 31 + ".", cause=Cause.SERVICE)
    service = item("sonoran-mail", checks=(SMTP, POP))
    month = run("sonoran-mail", "2026-04", Evidence(tuple(smtp + pop)), service)
    assert month.counted_down_ns == 40 * MINUTE
    # 40 min of an unplanned outage: 40 / 43200 x 1000 = 0.9259 -> 0.93
    assert month.credit.amount == Decimal("0.93")


def test_sonoran_mail_ddos_is_excluded_yet_credited() -> None:
    start = utc("2026-04-02T10:00:00")
    samples = results(SMTP, start, "x" * 61 + ".", cause=Cause.DDOS)
    month = run(
        "sonoran-mail", "2026-04", Evidence(tuple(samples)), item("sonoran-mail", checks=(SMTP,))
    )
    assert month.counted_down_ns == 0
    assert "6.2" in month.outages[0].rule
    assert month.credit.amount == Decimal("1.39")


def test_sonoran_short_network_interruption_earns_nothing() -> None:
    """A 10-minute network interruption is not "greater than ten minutes"."""
    start = utc("2026-04-02T10:00:00")
    samples = results(WEB, start, "x" * 11 + ".", cause=Cause.NETWORK)
    month = run("sonoran-web", "2026-04", Evidence(tuple(samples)))
    assert month.outages[0].duration_ns == 10 * MINUTE
    assert month.credit.amount == Decimal("0.00")
    assert "not longer than 10 minutes" in month.outages[0].credit_rule


def test_an_outage_crossing_the_month_boundary_is_split_between_months() -> None:
    """Down 23:50 on 30 April to 00:20 on 1 May (30 minutes, one run): April has 10
    minutes, May 20; the 5-minute minimum applies to the whole run."""
    samples = tuple(
        results(WEB, utc("2026-04-30T23:40:00"), "." * 10 + "x" * 31 + "." * 10, cause=Cause.HOST)
    )
    april = run("sonoran-web", "2026-04", Evidence(samples))
    may = run("sonoran-web", "2026-05", Evidence(samples))
    assert april.counted_down_ns == 10 * MINUTE
    assert may.counted_down_ns == 20 * MINUTE


# -- Sonar ---------------------------------------------------------------------


def _sonar_window(start: str, end: str, announced_hours_ahead: float) -> MaintenanceWindow:
    begin = eastern(start)
    return MaintenanceWindow(None, begin, eastern(end), begin - int(announced_hours_ahead * HOUR))


def _sonar_month(window: MaintenanceWindow, month: str = "2026-04") -> ItemMonth:
    policy = POLICIES["sonar"]
    start, end = month_bounds(month, policy)
    minutes = (end - start) // MINUTE
    down_from = (window.start_ns - start) // MINUTE
    down_for = (window.end_ns - window.start_ns) // MINUTE
    pattern = "." * down_from + "x" * down_for + "." * (minutes - down_from - down_for)
    samples = results(WEB, start, pattern, cause=Cause.SERVICE)
    service = item("sonar", prior_invoice=Decimal("4320"))
    return run("sonar", month, Evidence(tuple(samples), (window,)), service)


def test_sonar_maintenance_announced_71_hours_ahead_counts() -> None:
    """Saturday 01:00-02:00 Eastern, announced 71 h ahead (72 needed): 60 minutes of
    Actual Downtime. April has 43,200 minutes: 99.86% < 99.99%, so the credit is
    4320 / 43200 x 60 = 6.00."""
    month = _sonar_month(_sonar_window("2026-04-11T01:00:00", "2026-04-11T02:00:00", 71))
    (outage,) = month.outages
    assert outage.counted
    assert "announced 71.0 h ahead" in outage.rule
    assert month.counted_down_ns == HOUR
    assert month.credit.amount == Decimal("6.00")


def test_sonar_maintenance_announced_72_hours_ahead_at_the_weekend_is_excluded() -> None:
    month = _sonar_month(_sonar_window("2026-04-11T01:00:00", "2026-04-11T02:00:00", 72))
    assert month.counted_down_ns == 0
    assert month.met
    assert month.credit.amount == Decimal("0.00")
    assert "meets" in month.credit.note


def test_sonar_maintenance_crossing_7am_on_a_weekday_counts_from_7() -> None:
    """Tuesday 05:00-09:00 Eastern, well announced: 05:00-07:00 excluded, 07:00-09:00
    counts (planned maintenance may not fall Mon-Fri 07:00-19:00)."""
    month = _sonar_month(_sonar_window("2026-04-14T05:00:00", "2026-04-14T09:00:00", 100))
    assert [(o.counted, o.duration_ns) for o in month.outages] == [
        (False, 2 * HOUR),
        (True, 2 * HOUR),
    ]
    assert month.outages[1].start_ns == eastern("2026-04-14T07:00:00")
    assert "America/New_York" in month.outages[1].rule


def test_sonar_month_with_a_dst_change() -> None:
    """March 2026 in New York: DST starts 8 March, so the month has 31 x 1440 - 60 =
    44,580 minutes, from 05:00 UTC on 1 March to 04:00 UTC on 1 April. 10 minutes
    down; credit 4458 / 44580 x 10 = 1.00."""
    policy = POLICIES["sonar"]
    start, end = month_bounds("2026-03", policy)
    assert (start, end) == (utc("2026-03-01T05:00:00"), utc("2026-04-01T04:00:00"))
    assert (end - start) // MINUTE == 44_580
    down = eastern("2026-03-09T12:00:00")  # the day after the change
    samples = results(WEB, down - 5 * MINUTE, "....." + "x" * 10 + ".....", cause=Cause.SERVICE)
    service = item("sonar", prior_invoice=Decimal("4458"))
    month = run("sonar", "2026-03", Evidence(tuple(samples)), service)
    assert month.counted_down_ns == 10 * MINUTE
    assert month.credit.amount == Decimal("1.00")
    assert month.credit.figures["minutes_in_month"] == "44580"


def test_sonar_no_credit_when_not_in_good_standing() -> None:
    samples = results(WEB, utc("2026-04-02T10:00:00"), "x" * 60 + ".", cause=Cause.SERVICE)
    service = item("sonar", prior_invoice=Decimal("4320"), good_standing=False)
    month = run("sonar", "2026-04", Evidence(tuple(samples)), service)
    assert month.credit.amount == Decimal("0.00")
    assert "not in good standing" in month.credit.note


# -- HaiSoft -------------------------------------------------------------------


def _haisoft(outages_minutes: list[int], fee: str = "300") -> ItemMonth:
    """5-minute checks; each outage of N minutes starts on its own day at 10:00."""
    samples: list[Sample] = []
    for day, minutes in enumerate(outages_minutes, start=1):
        start = utc(f"2026-04-{day:02d}T10:00:00")
        samples += results(WEB, start, "x" * (minutes // 5) + ".", 5 * MINUTE, Cause.NETWORK)
    return run("haisoft-network", "2026-04", Evidence(tuple(samples)), item("haisoft-network", fee))


def test_haisoft_a_day_per_full_hour_over_one_hour() -> None:
    """Fee 300: a day is 10.00. 60 minutes: not over 1 h, nothing; 90 minutes: 1 full
    hour, 10.00; 185 minutes: 3 full hours, 30.00. Total 40.00."""
    month = _haisoft([60, 90, 185])
    assert month.credit.amount == Decimal("40.00")
    assert month.credit.figures["full_hours"] == "4"


def test_haisoft_credit_is_capped_at_half_the_fee() -> None:
    """20 hours down: 20 days = 200.00, capped at 50% of 300 = 150.00."""
    month = _haisoft([20 * 60])
    assert month.credit.amount == Decimal("150.00")
    assert "capped at 50" in month.credit.note


def test_haisoft_counts_only_network_causes() -> None:
    samples = results(WEB, utc("2026-04-02T10:00:00"), "x" * 24 + ".", 5 * MINUTE, Cause.HOST)
    month = run("haisoft-network", "2026-04", Evidence(tuple(samples)), item("haisoft-network"))
    assert month.counted_down_ns == 0
    assert month.credit.amount == Decimal("0.00")


def test_haisoft_reports_host_outages_beyond_the_4_hour_replacement() -> None:
    """A host outage of 5 h is outside the network guarantee (no credit) but broke the
    4-hour hardware replacement commitment; one of 3 h did not."""
    samples = results(WEB, utc("2026-04-02T10:00:00"), "x" * 60 + ".", 5 * MINUTE, Cause.HOST)
    samples += results(WEB, utc("2026-04-05T10:00:00"), "x" * 36 + ".", 5 * MINUTE, Cause.HOST)
    month = run("haisoft-network", "2026-04", Evidence(tuple(samples)), item("haisoft-network"))
    assert month.counted_down_ns == 0
    assert month.findings == (
        "host outage from 2026-04-02 10:00 UTC lasted 5.0 h, beyond the 4 h hardware "
        "replacement commitment",
    )


def test_sonar_emergency_maintenance_is_excluded_even_unannounced() -> None:
    begin = eastern("2026-04-14T10:00:00")  # a Tuesday morning, announced at the start
    window = MaintenanceWindow(None, begin, begin + HOUR, begin, MaintenanceKind.EMERGENCY)
    samples = results(WEB, begin - MINUTE, "." + "x" * 60 + ".", cause=Cause.SERVICE)
    month = run("sonar", "2026-04", Evidence(tuple(samples), (window,)))
    assert [(o.cause, o.counted) for o in month.outages] == [(Cause.MAINTENANCE, False)]
    assert month.met


# -- Closte --------------------------------------------------------------------

CLOSTE_WITH_TABLE = policy_from_mapping(
    {
        **yaml.safe_load((REPO / "collector/sla/policies/closte.yaml").read_text()),
        "name": "closte-with-table",
        "credit": {"kind": "table", "from_ticket": True,
                   "table": [{"below": 0.9995, "credit": "10%"}, {"below": 0.99, "credit": "25%"}]},
    },
    "test",
)  # fmt: skip


def test_closte_overlapping_network_and_host_events_are_one_event() -> None:
    """Network fails 10:00-10:30, the host 10:20-11:00 (two checks): one outage span
    10:00-11:00, split by cause where the earlier failure wins; both causes count;
    one event of 60 minutes: availability of credited time 1 - 60/43200 = 99.861%,
    below 99.95%: 10% of 200 = 20.00."""
    ping, http = CheckKey("n", "icmp"), CheckKey("n", "http")
    start = utc("2026-04-02T10:00:00")
    samples = results(ping, start, "x" * 30 + "." * 31, cause=Cause.NETWORK)
    samples += results(http, start, "." * 20 + "x" * 40 + ".", cause=Cause.HOST)
    service = item("closte-with-table", "200", checks=(ping, http))
    month = evaluate(service, CLOSTE_WITH_TABLE, "2026-04", Evidence(tuple(samples)))
    assert [(o.cause, o.duration_ns // MINUTE) for o in month.outages] == [
        (Cause.NETWORK, 30), (Cause.HOST, 30),
    ]  # fmt: skip
    assert month.counted_down_ns == HOUR
    assert month.credit.figures["events"] == "1"
    assert month.credit.amount == Decimal("20.00")


def test_closte_credited_time_starts_at_the_ticket() -> None:
    ping = CheckKey("n", "icmp")
    start = utc("2026-04-02T10:00:00")
    samples = results(ping, start, "x" * 60 + ".", cause=Cause.HOST)
    ticket = Ticket("item-1", start + 20 * MINUTE, "T-1")
    service = item("closte-with-table", "200", checks=(ping,))
    month = evaluate(service, CLOSTE_WITH_TABLE, "2026-04", Evidence(tuple(samples), (), (ticket,)))
    assert month.outages[0].credited_ns == 40 * MINUTE
    assert month.counted_down_ns == HOUR


def test_closte_built_in_says_plainly_that_no_table_is_configured() -> None:
    samples = results(WEB, utc("2026-04-02T10:00:00"), "x" * 60 + ".", cause=Cause.HOST)
    month = run("closte", "2026-04", Evidence(tuple(samples)))
    assert month.counted_down_ns == HOUR
    assert month.credit.amount == Decimal("0.00")
    assert "credit table is not in its text" in month.credit.note


def test_closte_excludes_software_causes_and_short_patches() -> None:
    """Service (software) downtime is excluded; a patch whose downtime stays within 10
    minutes is excluded, one that runs 15 minutes counts entirely."""
    start = utc("2026-04-02T10:00:00")
    samples = results(WEB, start, "x" * 30 + "." * 30, cause=Cause.SERVICE)
    short = results(WEB, start + 2 * HOUR, "x" * 8 + "." * 10, cause=Cause.HOST)
    long = results(WEB, start + 4 * HOUR, "x" * 15 + "." * 10, cause=Cause.HOST)
    windows = tuple(
        MaintenanceWindow(None, s, s + 20 * MINUTE, s, MaintenanceKind.PATCH)
        for s in (start + 2 * HOUR, start + 4 * HOUR)
    )
    month = run("closte", "2026-04", Evidence(tuple(samples + short + long), windows))
    assert [(o.cause, o.counted, o.duration_ns // MINUTE) for o in month.outages] == [
        (Cause.SERVICE, False, 30), (Cause.MAINTENANCE, False, 8), (Cause.MAINTENANCE, True, 15),
    ]  # fmt: skip
    assert "exceeded 10 minutes" in month.outages[2].rule


def test_an_operator_override_changes_the_cause() -> None:
    start = utc("2026-04-02T10:00:00")
    samples = results(WEB, start, "x" * 30 + ".", cause=Cause.HOST)
    override = Override("item-1", start, start + HOUR, Cause.CUSTOMER, "customer stopped the VM")
    month = run("closte", "2026-04", Evidence(tuple(samples), (), (), (override,)))
    (outage,) = month.outages
    assert (outage.cause, outage.counted) == (Cause.CUSTOMER, False)
    assert outage.cause_source == "override: customer stopped the VM"


# -- Websoft9 and unknown time ---------------------------------------------------


def test_websoft9_five_percent_per_outage_capped_at_the_fee() -> None:
    """3 outages: 15% of 80 = 12.00; 25 outages: 125%, capped at 100% = 80.00."""

    def month_with(outages: int) -> ItemMonth:
        samples: list[Sample] = []
        for n in range(outages):
            samples += results(
                WEB, utc("2026-04-01T00:00:00") + n * HOUR, "xx.", cause=Cause.SERVICE
            )
        return run("websoft9", "2026-04", Evidence(tuple(samples)), item("websoft9", "80"))

    assert month_with(3).credit.amount == Decimal("12.00")
    capped = month_with(25)
    assert capped.credit.amount == Decimal("80.00")
    assert "capped at 100" in capped.credit.note


def test_time_without_results_is_unknown_never_up_or_down() -> None:
    """Results 10:00-11:00 and 13:00-14:00 only: the rest of the month is unknown,
    reported, and left out of scheduled time; 30 failed minutes count."""
    start = utc("2026-04-02T10:00:00")
    samples = results(WEB, start, "." * 60 + " " * 120 + "x" * 30 + "." * 30, cause=Cause.HOST)
    month = run("closte", "2026-04", Evidence(tuple(samples)))
    assert month.unknown_ns == 30 * 24 * HOUR - 2 * HOUR
    assert month.scheduled_ns == 2 * HOUR
    assert month.availability == pytest.approx(0.75)


def test_policy_may_count_unknown_time_as_down() -> None:
    policy = replace(POLICIES["closte"], unknown="down")
    start = utc("2026-04-02T10:00:00")
    samples = results(WEB, start, "." * 60)
    month = evaluate(item("closte"), policy, "2026-04", Evidence(tuple(samples)))
    assert month.counted_down_ns == 30 * 24 * HOUR - HOUR


# Which causes count toward availability, per built-in policy, as the agreements say
# (Sonoran names no force majeure exclusion, so there it counts).
COUNTS = {
    # Sonoran 6.3: network, backbone (upstream) and the customer's network are not in
    # server uptime; 6.2: DoS is not in mail uptime.
    "sonoran-web": {Cause.HOST, Cause.SERVICE, Cause.DDOS, Cause.FORCE_MAJEURE, Cause.UNKNOWN},
    "sonoran-mail": {Cause.HOST, Cause.SERVICE, Cause.FORCE_MAJEURE, Cause.UNKNOWN},
    "sonoran-hypervisor": {
        Cause.HOST,
        Cause.SERVICE,
        Cause.DDOS,
        Cause.FORCE_MAJEURE,
        Cause.UNKNOWN,
    },
    # Sonar: customer acts and networks, the Internet beyond Sonar, security threats,
    # force majeure.
    "sonar": {Cause.NETWORK, Cause.HOST, Cause.SERVICE, Cause.UNKNOWN},
    # HaiSoft: the network guarantee only.
    "haisoft-network": {Cause.NETWORK},
    # Closte: only network and host node.
    "closte": {Cause.NETWORK, Cause.HOST},
    # Websoft9: customer environment, cloud infrastructure and force majeure excluded.
    "websoft9": {Cause.NETWORK, Cause.HOST, Cause.SERVICE, Cause.DDOS, Cause.UNKNOWN},
}


@pytest.mark.parametrize("policy", sorted(COUNTS))
def test_which_causes_count_under_each_agreement(policy: str) -> None:
    for cause in set(Cause) - {Cause.MAINTENANCE}:
        samples = results(WEB, utc("2026-04-02T10:00:00"), "." + "x" * 31 + ".", cause=cause)
        month = run(
            policy, "2026-04", Evidence(tuple(samples)), item(policy, prior_invoice=Decimal(1))
        )
        counted = month.counted_down_ns > 0
        assert counted == (cause in COUNTS[policy]), (policy, cause)
        if not counted:
            assert month.outages[0].rule, (policy, cause)  # the rule that excluded it is named


def test_closte_scheduled_maintenance_needs_24_hours_notice() -> None:
    start = utc("2026-04-04T02:00:00")
    samples = results(WEB, start - MINUTE, "." + "x" * 30 + ".", cause=Cause.HOST)
    for hours, counted in ((24, False), (23, True)):
        window = MaintenanceWindow(None, start, start + HOUR, start - hours * HOUR)
        month = run("closte", "2026-04", Evidence(tuple(samples), (window,)))
        assert month.outages[0].counted is counted, hours


def test_closte_excess_packet_loss_is_degraded_time_not_downtime() -> None:
    """Loss rounds of 100 echoes every minute from 10:00: 10 rounds lose 2 (2% > 1%),
    then 5 lose exactly 1 (1%: not more than 1%), then a 3% round at 10:20 followed by
    no result for 30 minutes (it stands for one interval). Degraded: 10 + 1 = 11 min;
    the web check was up throughout, so availability stays 100%."""
    loss = CheckKey("n", "egress")
    start = utc("2026-04-02T10:00:00")
    rounds = [(2, 10), (1, 5), (0, 5), (3, 1)]
    samples = []
    minute = 0
    for lost, count in rounds:
        for _ in range(count):
            samples.append(
                Sample(loss, start + minute * MINUTE, True, MINUTE, None, 100, 100 - lost)
            )
            minute += 1
    samples += results(WEB, start, "." * 60)
    service = replace(item("closte"), loss_checks=(loss,))
    month = run("closte", "2026-04", Evidence(tuple(samples)), service)
    assert month.degraded == (
        (start, start + 10 * MINUTE),
        (start + 20 * MINUTE, start + 21 * MINUTE),
    )
    assert month.degraded_ns == 11 * MINUTE
    assert month.counted_down_ns == 0
    assert month.availability == 1.0


# -- incidents judged whole, and maintenance keeps the observed cause (review findings) --


def _windowed(policy: str, kind: MaintenanceKind, cause: Cause, fee: str = "300") -> ItemMonth:
    """Down 02:00-04:00 inside a window announced a week ahead (or an emergency)."""
    start = utc("2026-04-04T02:00:00")
    samples = results(WEB, start - MINUTE, "." + "x" * 120 + ".", cause=cause)
    window = MaintenanceWindow(None, start, start + 2 * HOUR, start - 7 * 24 * HOUR, kind)
    return run(policy, "2026-04", Evidence(tuple(samples), (window,)), item(policy, fee))


def test_accepted_maintenance_never_earns_a_credit() -> None:
    for policy in ("websoft9", "haisoft-network"):
        month = _windowed(policy, MaintenanceKind.PLANNED, Cause.NETWORK)
        assert month.counted_down_ns == 0, policy
        assert month.credit.amount == Decimal("0.00"), policy
        assert month.outages[0].credit_rule == "accepted maintenance earns no credit"


def test_a_refused_window_is_judged_by_the_observed_cause() -> None:
    """HaiSoft does not exclude emergencies, but a host failure in one is still a host
    failure: outside the network guarantee, no downtime and no credit."""
    month = _windowed("haisoft-network", MaintenanceKind.EMERGENCY, Cause.HOST)
    assert month.counted_down_ns == 0
    assert month.credit.amount == Decimal("0.00")
    network = _windowed("haisoft-network", MaintenanceKind.EMERGENCY, Cause.NETWORK)
    assert network.counted_down_ns == 2 * HOUR
    assert network.credit.amount == Decimal("20.00")  # 2 full hours x 300 / 30


def test_an_incident_across_the_month_edge_is_judged_whole() -> None:
    """Sonoran: network down 23:52-00:08 (16 min > 10): each month credits its 8
    minutes. HaiSoft: 90 minutes from 23:15 earn one day, in the month it started.
    Websoft9: one outage across the edge is one missed standard, in its first month."""
    edge = utc("2026-05-01T00:00:00")
    sonoran = tuple(results(WEB, edge - 9 * MINUTE, "." + "x" * 17 + ".", cause=Cause.NETWORK))
    april = run("sonoran-web", "2026-04", Evidence(sonoran))
    may = run("sonoran-web", "2026-05", Evidence(sonoran))
    assert [o.credited_ns // MINUTE for o in april.outages + may.outages] == [8, 8]
    haisoft = tuple(results(WEB, edge - 45 * MINUTE, "x" * 18 + ".", 5 * MINUTE, Cause.NETWORK))
    service = item("haisoft-network", "300")
    assert run("haisoft-network", "2026-04", Evidence(haisoft), service).credit.amount == Decimal(
        "10.00"
    )
    assert run("haisoft-network", "2026-05", Evidence(haisoft), service).credit.amount == Decimal(
        "0.00"
    )
    websoft = tuple(results(WEB, edge - 5 * MINUTE, "x" * 10 + ".", cause=Cause.SERVICE))
    service = item("websoft9", "80")
    assert run("websoft9", "2026-04", Evidence(websoft), service).credit.amount == Decimal("4.00")
    assert run("websoft9", "2026-05", Evidence(websoft), service).credit.amount == Decimal("0.00")


def test_a_round_without_a_cause_does_not_split_an_outage() -> None:
    """HaiSoft: 90 minutes of network failures, one 5-minute round in the middle with no
    cause: still one network outage of 90 minutes, one day's credit."""
    start = utc("2026-04-02T10:00:00")
    samples = results(WEB, start, "x" * 18 + ".", 5 * MINUTE, Cause.NETWORK)
    samples[9] = replace(samples[9], cause=None)
    month = run(
        "haisoft-network", "2026-04", Evidence(tuple(samples)), item("haisoft-network", "300")
    )
    assert [(o.cause, o.duration_ns // MINUTE) for o in month.outages] == [(Cause.NETWORK, 90)]
    assert month.credit.amount == Decimal("10.00")


def test_an_override_to_maintenance_without_a_window_still_counts() -> None:
    start = utc("2026-04-02T10:00:00")
    samples = results(WEB, start, "x" * 60 + ".", cause=Cause.HOST)
    override = Override("item-1", start, start + HOUR, Cause.MAINTENANCE, "said to be maintenance")
    month = run("closte", "2026-04", Evidence(tuple(samples), (), (), (override,)))
    assert month.counted_down_ns == HOUR
    assert month.outages[0].cause is Cause.MAINTENANCE


def test_closte_ticket_starts_the_credit_of_the_whole_event() -> None:
    """Network 10:00-10:30 then host 10:30-11:00, ticket at 10:40: one event, 20 minutes
    credited (10:40-11:00)."""
    ping, http = CheckKey("n", "icmp"), CheckKey("n", "http")
    start = utc("2026-04-02T10:00:00")
    samples = results(ping, start, "x" * 30 + "." * 31, cause=Cause.NETWORK)
    samples += results(http, start, "." * 30 + "x" * 30 + ".", cause=Cause.HOST)
    ticket = Ticket("item-1", start + 40 * MINUTE)
    service = item("closte-with-table", "200", checks=(ping, http))
    month = evaluate(service, CLOSTE_WITH_TABLE, "2026-04", Evidence(tuple(samples), (), (ticket,)))
    assert month.credit.figures["events"] == "1"
    assert [o.credited_ns // MINUTE for o in month.outages] == [0, 20]
    assert month.credit.basis == ((start, start + HOUR, 20 * MINUTE),)
