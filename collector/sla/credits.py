"""What a month's outages are worth under each credit kind (policy ``credit.kind``).

Every credit carries its formula and the figures that went into it, so a
report shows how the amount was reached. Amounts are rounded half up to cents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

from collector.sla.model import DAY, HOUR, MINUTE, Credit, Event, Outage, ServiceItem
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
    outages: Sequence[Outage],
    events: Sequence[Event],
) -> Credit:
    """The month's credit: time-based kinds use the month's (clipped) outages,
    per-incident kinds the incidents that started in the month (whole)."""
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
    return compute(_Month(item, policy, period, outages, events))


class _Month(NamedTuple):
    """What every credit kind may use."""

    item: ServiceItem
    policy: Policy
    period: tuple[int, int]
    outages: Sequence[Outage]
    events: Sequence[Event]


def _none(item: ServiceItem, note: str) -> Credit:
    return Credit(Decimal("0.00"), item.currency, "none", {}, note)


def _outage_basis(
    outages: Sequence[Outage], counted: bool = False
) -> tuple[tuple[int, int, int], ...]:
    if counted:
        return tuple((o.start_ns, o.end_ns, o.duration_ns) for o in outages if o.counted)
    return tuple(
        (o.end_ns - o.credited_ns, o.end_ns, o.credited_ns) for o in outages if o.credited_ns
    )


def _event_basis(events: Sequence[Event]) -> tuple[tuple[int, int, int], ...]:
    return tuple((e.start_ns, e.end_ns, e.credited_ns) for e in events if e.credited_ns)


def _proportional(month: _Month) -> Credit:
    """Sonoran: credited time / (24 h x period_days) x the monthly fee."""
    item, policy, _period, outages, _events = month
    basis = _outage_basis(outages)
    credited = sum(ns for _s, _e, ns in basis)
    days = policy.credit.period_days
    amount = Decimal(credited) / Decimal(days * DAY) * item.monthly_fee
    return Credit(
        _money(amount), item.currency,
        f"credited time / (24 h x {days} days) x monthly fee",
        {"credited_time": _duration(credited), "period": f"{days * 24} h",
         "monthly_fee": f"{item.monthly_fee} {item.currency}", "exact": str(amount)},
        basis=basis,
    )  # fmt: skip


def _per_minute_of_prior_invoice(month: _Month) -> Credit:
    """Sonar: prior invoice / minutes in this month x minutes of downtime."""
    item, _policy, period, outages, _events = month
    if item.prior_invoice is None:
        return _none(item, "no credit computed: the service item has no prior_invoice")
    basis = _outage_basis(outages, counted=True)
    minutes_in_month = Decimal(period[1] - period[0]) / MINUTE
    down_minutes = Decimal(sum(ns for _s, _e, ns in basis)) / MINUTE
    amount = item.prior_invoice / minutes_in_month * down_minutes
    return Credit(
        _money(amount), item.currency,
        "prior month's invoice / minutes in the month x downtime minutes",
        {"prior_invoice": f"{item.prior_invoice} {item.currency}",
         "minutes_in_month": f"{minutes_in_month:f}", "downtime_minutes": f"{down_minutes:f}",
         "exact": str(amount)},
        basis=basis,
    )  # fmt: skip


def _day_per_full_hour(month: _Month) -> Credit:
    """HaiSoft: fee / 30 per full hour of each incident longer than min_outage, capped."""
    item, policy, _period, _outages, events = month
    rule = policy.credit
    long_enough = [e for e in events if e.credited_ns > rule.min_outage_ns]
    hours = sum(e.credited_ns // HOUR for e in long_enough)
    day = item.monthly_fee / 30
    figures = {"full_hours": str(hours), "one_day": f"{_money(day)} {item.currency}"}
    formula = f"monthly fee / 30 x full hours of outages over {rule.min_outage_ns / HOUR:g} h"
    return _capped(item, day * hours, rule.cap_ratio, formula, figures, _event_basis(long_enough))


def _percent_per_outage(month: _Month) -> Credit:
    """Websoft9: a share of the fee per missed service standard (incident), capped."""
    item, policy, _period, _outages, events = month
    rule = policy.credit
    basis = _event_basis(events)
    amount = item.monthly_fee * rule.percent_per_outage * len(basis)
    figures = {"outages": str(len(basis)), "per_outage": f"{rule.percent_per_outage:%}"}
    formula = "monthly fee x share per outage x outages"
    return _capped(item, amount, rule.cap_ratio, formula, figures, basis)


def _table(month: _Month) -> Credit:
    """Closte: the share of the fee for the availability band of the month's incidents."""
    item, policy, period, _outages, events = month
    rule = policy.credit
    if not rule.table:
        return _none(item, "no credit computed: the agreement's credit table is not in its "
                     "text; configure credit.table in a policy of your own")  # fmt: skip
    basis = _event_basis(events)
    credited = sum(ns for _s, _e, ns in basis)
    availability = 1 - credited / (period[1] - period[0])
    share = Decimal(0)
    for below, row_share in rule.table:
        if availability < below:
            share = row_share
    return Credit(
        _money(item.monthly_fee * share), item.currency,
        "monthly fee x the table's share for the availability of credited time",
        {"credited_time": _duration(credited), "events": str(len(basis)),
         "availability_for_credit": f"{availability:.5%}", "share": f"{share:%}"},
        basis=basis,
    )  # fmt: skip


def _capped(
    item: ServiceItem,
    amount: Decimal,
    cap: Decimal | None,
    formula: str,
    figures: dict[str, str],
    basis: tuple[tuple[int, int, int], ...],
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
    return Credit(_money(amount), item.currency, formula, figures, note, basis)


_Kind = Callable[[_Month], Credit]
_KINDS: dict[str, _Kind] = {
    CreditKind.PROPORTIONAL: _proportional,
    CreditKind.PER_MINUTE_OF_PRIOR_INVOICE: _per_minute_of_prior_invoice,
    CreditKind.DAY_PER_FULL_HOUR: _day_per_full_hour,
    CreditKind.PERCENT_PER_OUTAGE: _percent_per_outage,
    CreditKind.TABLE: _table,
}
