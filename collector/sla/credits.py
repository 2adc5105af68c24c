"""What a month's outages are worth under each credit kind (policy ``credit.kind``).

Every credit carries its formula and the figures that went into it, so a
report shows how the amount was reached. Amounts are rounded half up to cents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal

from collector.sla.model import DAY, HOUR, MINUTE, Credit, Outage, ServiceItem
from collector.sla.policy import CreditKind, Policy

CENT = Decimal("0.01")


def _money(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _duration(ns: int) -> str:
    return f"{ns / MINUTE:.2f} min"


def compute_credit(
    item: ServiceItem,
    policy: Policy,
    period: tuple[int, int],
    availability: float,
    counted_down_ns: int,
    outages: Sequence[Outage],
) -> Credit:
    rule = policy.credit
    if rule.requires_good_standing and not item.good_standing:
        return _none(
            item, "no credit: the customer is not in good standing (past due or in default)"
        )
    if rule.only_below_target and availability >= policy.target:
        return _none(item, f"no credit: availability {availability:.5%} meets {policy.target:.2%}")
    compute = _KINDS.get(rule.kind)
    if compute is None:
        return _none(item, "this policy grants no credits")
    return compute(item, policy, period, counted_down_ns, outages)


def _none(item: ServiceItem, note: str) -> Credit:
    return Credit(Decimal("0.00"), item.currency, "none", {}, note)


def _credited(outages: Sequence[Outage]) -> list[Outage]:
    return [o for o in outages if o.credited_ns > 0]


def _proportional(
    item: ServiceItem,
    policy: Policy,
    period: tuple[int, int],
    counted: int,
    outages: Sequence[Outage],
) -> Credit:
    """Sonoran: credited time / (24 h x period_days) x the monthly fee."""
    credited = sum(o.credited_ns for o in _credited(outages))
    days = policy.credit.period_days
    amount = Decimal(credited) / Decimal(days * DAY) * item.monthly_fee
    return Credit(
        _money(amount), item.currency,
        f"credited time / (24 h x {days} days) x monthly fee",
        {"credited_time": _duration(credited), "period": f"{days * 24} h",
         "monthly_fee": f"{item.monthly_fee} {item.currency}", "exact": str(amount)},
    )  # fmt: skip


def _per_minute_of_prior_invoice(
    item: ServiceItem,
    policy: Policy,
    period: tuple[int, int],
    counted: int,
    outages: Sequence[Outage],
) -> Credit:
    """Sonar: prior invoice / minutes in this month x minutes of downtime."""
    if item.prior_invoice is None:
        return _none(item, "no credit computed: the service item has no prior_invoice")
    minutes_in_month = Decimal(period[1] - period[0]) / MINUTE
    down_minutes = Decimal(counted) / MINUTE
    amount = item.prior_invoice / minutes_in_month * down_minutes
    return Credit(
        _money(amount), item.currency,
        "prior month's invoice / minutes in the month x downtime minutes",
        {"prior_invoice": f"{item.prior_invoice} {item.currency}",
         "minutes_in_month": f"{minutes_in_month:f}", "downtime_minutes": f"{down_minutes:f}",
         "exact": str(amount)},
    )  # fmt: skip


def _day_per_full_hour(
    item: ServiceItem,
    policy: Policy,
    period: tuple[int, int],
    counted: int,
    outages: Sequence[Outage],
) -> Credit:
    """HaiSoft: fee / 30 per full hour of each outage longer than min_outage, capped."""
    rule = policy.credit
    hours = sum(
        o.credited_ns // HOUR for o in _credited(outages) if o.duration_ns > rule.min_outage_ns
    )
    day = item.monthly_fee / 30
    amount = day * hours
    figures = {"full_hours": str(hours), "one_day": f"{_money(day)} {item.currency}"}
    return _capped(item, amount, rule.cap_ratio, "monthly fee / 30 x full hours of outages over "
                   f"{rule.min_outage_ns / HOUR:g} h", figures)  # fmt: skip


def _percent_per_outage(
    item: ServiceItem,
    policy: Policy,
    period: tuple[int, int],
    counted: int,
    outages: Sequence[Outage],
) -> Credit:
    """Websoft9: a share of the fee per missed service standard (outage event), capped."""
    rule = policy.credit
    events = len(_events(_credited(outages)))
    amount = item.monthly_fee * rule.percent_per_outage * events
    figures = {"outages": str(events), "per_outage": f"{rule.percent_per_outage:%}"}
    return _capped(
        item, amount, rule.cap_ratio, "monthly fee x share per outage x outages", figures
    )


def _table(
    item: ServiceItem,
    policy: Policy,
    period: tuple[int, int],
    counted: int,
    outages: Sequence[Outage],
) -> Credit:
    """Closte: the share of the fee for the availability band the month falls in."""
    rule = policy.credit
    if not rule.table:
        return _none(item, "no credit computed: the agreement's credit table is not in its "
                     "text; configure credit.table in a policy of your own")  # fmt: skip
    events = _events(_credited(outages))
    credited = sum(end - start for start, end in events)
    scheduled = period[1] - period[0]
    availability = 1 - credited / scheduled
    share = Decimal(0)
    for below, row_share in rule.table:
        if availability < below:
            share = row_share
    return Credit(
        _money(item.monthly_fee * share), item.currency,
        "monthly fee x the table's share for the availability of credited time",
        {"credited_time": _duration(credited), "events": str(len(events)),
         "availability_for_credit": f"{availability:.5%}", "share": f"{share:%}"},
    )  # fmt: skip


def _events(outages: Sequence[Outage]) -> list[tuple[int, int]]:
    """Touching outages (one span split by cause) are one event: one credit."""
    events: list[tuple[int, int]] = []
    for outage in sorted(outages, key=lambda o: o.start_ns):
        start = outage.end_ns - outage.credited_ns
        if events and start <= events[-1][1]:
            events[-1] = (events[-1][0], max(events[-1][1], outage.end_ns))
        else:
            events.append((start, outage.end_ns))
    return events


def _capped(
    item: ServiceItem, amount: Decimal, cap: Decimal | None, formula: str, figures: dict[str, str]
) -> Credit:
    figures = {
        **figures,
        "monthly_fee": f"{item.monthly_fee} {item.currency}",
        "exact": str(amount),
    }
    note = ""
    if cap is not None and amount > item.monthly_fee * cap:
        amount = item.monthly_fee * cap
        note = f"capped at {cap:%} of the monthly fee"
    return Credit(_money(amount), item.currency, formula, figures, note)


_Kind = Callable[[ServiceItem, Policy, tuple[int, int], int, Sequence[Outage]], Credit]
_KINDS: dict[str, _Kind] = {
    CreditKind.PROPORTIONAL: _proportional,
    CreditKind.PER_MINUTE_OF_PRIOR_INVOICE: _per_minute_of_prior_invoice,
    CreditKind.DAY_PER_FULL_HOUR: _day_per_full_hour,
    CreditKind.PERCENT_PER_OUTAGE: _percent_per_outage,
    CreditKind.TABLE: _table,
}
