"""Evaluate one service item's month under its policy.

    samples --(policy.downtime)--> check spans --(union, causes)--> item spans
    item spans --(causes, maintenance)--> outages, counted or excluded
    outages --(policy.credit)--> credit

Availability = 1 - counted downtime / scheduled time, where scheduled time is
the month minus excluded downtime (and minus unknown time, unless the policy
counts unknown time as up or down). Both numbers are reported.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from collector.sla.credits import compute_credit
from collector.sla.maintenance import MaintenanceJudge
from collector.sla.model import (
    HOUR,
    Cause,
    CauseTotals,
    CheckKey,
    Evidence,
    ItemMonth,
    Outage,
    Sample,
    ServiceItem,
    Ticket,
)
from collector.sla.policy import Policy
from collector.sla.timeline import CheckSpan, ItemSpan, State, check_spans, item_spans


def month_bounds(month: str, policy: Policy) -> tuple[int, int]:
    """``[start, end)`` in ns of calendar month ``YYYY-MM`` in the policy's time zone."""
    year, number = (int(part) for part in month.split("-"))
    first = dt.datetime(year, number, 1, tzinfo=policy.zone)
    following = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=policy.zone)
    return _ns(first), _ns(following)


def _ns(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * 10**9


def evaluate(item: ServiceItem, policy: Policy, month: str, evidence: Evidence) -> ItemMonth:
    start, end = month_bounds(month, policy)
    spans = item_spans(
        _spans_by_check(item.checks, evidence.samples, policy),
        start,
        end,
        [o for o in evidence.overrides if o.item_id == item.id],
        [m for m in evidence.maintenance if m.item_id in (None, item.id)],
    )
    judge = MaintenanceJudge(policy, evidence.maintenance, item.id, spans)
    outages = _outages(spans, policy, judge, evidence.tickets)
    degraded = excess_loss_spans(item, policy, evidence.samples, start, end)
    return _month(item, policy, month, start, end, spans, outages, degraded)


def _spans_by_check(
    checks: Sequence[CheckKey], samples: Sequence[Sample], policy: Policy
) -> dict[CheckKey, list[CheckSpan]]:
    by_check: dict[CheckKey, list[Sample]] = defaultdict(list)
    wanted = set(checks)
    for sample in samples:
        if sample.check in wanted:
            by_check[sample.check].append(sample)
    # Sorted by everything, so that duplicates of one moment never depend on input order.
    return {
        key: check_spans(
            sorted(found, key=lambda s: (s.start_ns, s.ok, s.cause or "", s.interval_ns)),
            policy.downtime,
        )
        for key, found in by_check.items()
    }


def _outages(
    spans: Sequence[ItemSpan], policy: Policy, judge: MaintenanceJudge, tickets: Sequence[Ticket]
) -> list[Outage]:
    outages: list[Outage] = []
    for span in spans:
        if span.state != State.DOWN:
            continue
        if span.cause is Cause.MAINTENANCE:
            parts = judge.split(span.start_ns, span.end_ns)
        else:
            rule = policy.cause_rule(span.cause)
            why = rule.why or f"{span.cause} downtime is excluded"
            parts = [(span.start_ns, span.end_ns, rule.counts, "counted" if rule.counts else why)]
        for start, end, counted, why in parts:
            outage = Outage(start, end, span.cause, counted, why, 0, "", span.cause_source)
            outages.append(_with_credit(outage, policy, tickets))
    return outages


def _with_credit(outage: Outage, policy: Policy, tickets: Sequence[Ticket]) -> Outage:
    """The outage's credited time under the cause's credit rule."""
    rule = policy.cause_rule(outage.cause)
    if not rule.credit:
        why = rule.credit_why or f"{outage.cause} outages earn no credit"
        return replace(outage, credit_rule=why)
    if outage.duration_ns <= rule.credit_min_ns:
        minutes = rule.credit_min_ns / 60e9
        why = f"not longer than {minutes:g} minutes" + (
            f" ({rule.credit_why})" if rule.credit_why else ""
        )
        return replace(outage, credit_rule=why)
    start = outage.start_ns
    if policy.credit.from_ticket:
        opened = [t.opened_ns for t in tickets if outage.start_ns <= t.opened_ns < outage.end_ns]
        start = min(opened, default=start)
    claim_by = (
        outage.end_ns + policy.credit.claim_window_ns
        if policy.credit.claim_window_ns is not None
        else None
    )
    return replace(
        outage,
        credited_ns=outage.end_ns - start,
        credit_rule=rule.credit_why or "eligible",
        claim_by_ns=claim_by,
    )


def _month(
    item: ServiceItem,
    policy: Policy,
    month: str,
    start: int,
    end: int,
    spans: Sequence[ItemSpan],
    outages: Sequence[Outage],
    degraded: Sequence[tuple[int, int]] = (),
) -> ItemMonth:
    unknown = sum(s.end_ns - s.start_ns for s in spans if s.state == State.UNKNOWN)
    counted = sum(o.duration_ns for o in outages if o.counted)
    excluded = sum(o.duration_ns for o in outages if not o.counted)
    if policy.unknown == "down":
        counted += unknown
    removed = excluded + (unknown if policy.unknown == "exclude" else 0)
    scheduled = end - start - removed
    availability = 1.0 - counted / scheduled if scheduled > 0 else 1.0
    deadlines = [o.claim_by_ns for o in outages if o.claim_by_ns is not None]
    result = ItemMonth(
        item=item,
        policy=policy.name,
        month=month,
        timezone=policy.timezone,
        period_start_ns=start,
        period_end_ns=end,
        scheduled_ns=scheduled,
        excluded_ns=excluded,
        counted_down_ns=counted,
        unknown_ns=unknown,
        availability=availability,
        target=policy.target,
        met=availability >= policy.target,
        by_cause=_by_cause(outages),
        outages=tuple(outages),
        credit=compute_credit(item, policy, (start, end), availability, counted, outages),
        claim_deadline_ns=min(deadlines, default=None),
        findings=_findings(policy, outages),
        degraded_ns=sum(e - s for s, e in degraded),
        degraded=tuple(degraded),
    )
    return result


def excess_loss_spans(
    item: ServiceItem, policy: Policy, samples: Sequence[Sample], start: int, end: int
) -> list[tuple[int, int]]:
    """Where a loss check's round lost more than the policy's bound, merged, clipped to
    ``[start, end)``: each such round stands for its interval (or until the next)."""
    bound = policy.excess_loss_above
    if bound is None or not item.loss_checks:
        return []
    lossy: list[tuple[int, int]] = []
    for check in item.loss_checks:
        rounds = sorted((s for s in samples if s.check == check), key=lambda s: s.start_ns)
        for index, sample in enumerate(rounds):
            ratio = sample.loss_ratio
            if ratio is None or ratio <= bound:
                continue
            reach = sample.start_ns + sample.interval_ns
            if index + 1 < len(rounds):
                reach = min(reach, rounds[index + 1].start_ns)
            lossy.append((max(sample.start_ns, start), min(reach, end)))
    return _merge([(s, e) for s, e in lossy if s < e])


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for span_start, span_end in sorted(spans):
        if merged and span_start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], span_end))
        else:
            merged.append((span_start, span_end))
    return merged


def _findings(policy: Policy, outages: Sequence[Outage]) -> tuple[str, ...]:
    limit = policy.hardware_replacement_ns
    if limit is None:
        return ()
    return tuple(
        f"host outage from {_utc(o.start_ns)} lasted {o.duration_ns / HOUR:.1f} h, beyond the "
        f"{limit / HOUR:g} h hardware replacement commitment"
        for o in outages
        if o.cause is Cause.HOST and o.duration_ns > limit
    )


def _utc(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns // 10**9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _by_cause(outages: Sequence[Outage]) -> dict[Cause, CauseTotals]:
    totals: dict[Cause, CauseTotals] = {}
    for outage in outages:
        before = totals.get(outage.cause, CauseTotals())
        rules = before.rules
        if not outage.counted and outage.rule not in rules:
            rules = (*rules, outage.rule)
        totals[outage.cause] = CauseTotals(
            counted_ns=before.counted_ns + (outage.duration_ns if outage.counted else 0),
            excluded_ns=before.excluded_ns + (0 if outage.counted else outage.duration_ns),
            rules=rules,
        )
    return totals
