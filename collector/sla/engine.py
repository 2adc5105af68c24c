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
from dataclasses import dataclass, replace

from collector.sla.credits import compute_credit
from collector.sla.maintenance import MaintenanceJudge
from collector.sla.model import (
    DAY,
    HOUR,
    MINUTE,
    Cause,
    CauseTotals,
    CheckKey,
    Event,
    Evidence,
    ItemMonth,
    MaintenanceKind,
    MaintenanceScope,
    MaintenanceWindow,
    Outage,
    Override,
    Sample,
    ServiceItem,
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


# Outages are judged whole: the timeline runs this far beyond the month on both sides,
# so an incident crossing the month's edge keeps its full length for per-incident rules.
MARGIN_NS = DAY


@dataclass(frozen=True, slots=True)
class _Part:
    """A judged piece of downtime, whole (not yet clipped to the month)."""

    start_ns: int
    end_ns: int
    cause: Cause
    counted: bool
    rule: str
    source: str
    credit: bool
    credit_rule: str
    # The cause whose credit minimum applies (the observed one inside a window).
    credit_cause: Cause


def evaluate(item: ServiceItem, policy: Policy, month: str, evidence: Evidence) -> ItemMonth:
    start, end = month_bounds(month, policy)
    overrides = sorted((o for o in evidence.overrides if o.item_id == item.id), key=_override_key)
    # Windows of another item are not this one's; node, segment and site windows come
    # already resolved to the item (load_evidence), and cancelled ones cover nothing.
    windows = sorted(
        (m for m in evidence.maintenance
         if m.active and (m.scope is not MaintenanceScope.ITEM or m.item_id == item.id)),
        key=_window_key,
    )  # fmt: skip
    tickets = sorted(t.opened_ns for t in evidence.tickets if t.item_id == item.id)
    spans = item_spans(
        _spans_by_check(item.checks, evidence.samples, policy),
        start - MARGIN_NS,
        end + MARGIN_NS,
        overrides,
        windows,
    )
    parts = _judge(spans, policy)
    outages, events = _incidents(parts, policy, tickets, start, end)
    month_spans = _clip_spans(spans, start, end)
    degraded = excess_loss_spans(item, policy, evidence.samples, start, end)
    return _month(item, policy, month, start, end, month_spans, outages, events, degraded)


_KIND_ORDER = {kind: index for index, kind in enumerate(MaintenanceKind)}


def _window_key(m: MaintenanceWindow) -> tuple[int, int, int, int, str, str, str, int]:
    """Overlapping windows: the earliest decides, then a fixed order (never input order)."""
    return (m.start_ns, m.end_ns, _KIND_ORDER[m.kind], m.announced_ns, m.note, str(m.scope),
            m.scope_id or "", m.window_id or 0)  # fmt: skip


def _override_key(o: Override) -> tuple[int, int, str, str]:
    return (o.start_ns, o.end_ns, o.cause.value, o.reason)


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


# -- judging downtime ------------------------------------------------------------


def _judge(spans: Sequence[ItemSpan], policy: Policy) -> list[_Part]:
    judge = MaintenanceJudge(policy, spans)
    parts: list[_Part] = []
    for span in spans:
        if span.state != State.DOWN:
            continue
        if span.window is not None:
            parts += _maintenance_parts(span, judge, policy)
        else:
            parts.append(_cause_part(span, policy))
    return parts


def _cause_part(span: ItemSpan, policy: Policy) -> _Part:
    rule = policy.cause_rule(span.cause)
    why = "counted" if rule.counts else (rule.why or f"{span.cause} downtime is excluded")
    credit_why = rule.credit_why or (
        "eligible" if rule.credit else f"{span.cause} outages earn no credit"
    )
    return _Part(span.start_ns, span.end_ns, span.cause, rule.counts, why, span.cause_source,
                 rule.credit, credit_why, span.cause)  # fmt: skip


def _maintenance_parts(span: ItemSpan, judge: MaintenanceJudge, policy: Policy) -> list[_Part]:
    """Accepted maintenance is excluded and earns nothing; the rest is judged by the cause
    the results give (a host failure in a refused window is still a host failure)."""
    assert span.window is not None
    observed = policy.cause_rule(span.observed)
    # A planned window that does not pass is still planned: the policy's maintenance
    # rule decides its credit if it has one; an emergency is an unplanned interruption.
    emergency = span.window.kind is MaintenanceKind.EMERGENCY
    credit = observed if emergency or Cause.MAINTENANCE not in policy.causes else (
        policy.cause_rule(Cause.MAINTENANCE)
    )  # fmt: skip
    parts = []
    for start, end, accepted, why in judge.split(span):
        if accepted:
            no_credit = "accepted maintenance earns no credit"
            parts.append(_Part(start, end, Cause.MAINTENANCE, False, why, span.cause_source,
                               False, no_credit, span.observed))  # fmt: skip
            continue
        counts = observed.counts
        rule = why if counts else (observed.why or f"{span.observed} downtime is excluded")
        credit_why = credit.credit_why or ("eligible" if credit.credit else "no credit")
        source = f"{span.cause_source}; observed cause {span.observed}"
        parts.append(_Part(start, end, Cause.MAINTENANCE, counts, rule, source,
                           credit.credit, credit_why, span.observed))  # fmt: skip
    return parts


# -- incidents -------------------------------------------------------------------


def _incidents(
    parts: Sequence[_Part], policy: Policy, tickets: Sequence[int], start: int, end: int
) -> tuple[list[Outage], list[Event]]:
    """The month's outages (clipped) and the incidents starting in it (whole)."""
    outages: list[Outage] = []
    events: list[Event] = []
    for group in _touching(parts):
        credited = _credited_spans(group, policy, tickets)
        claim_by = (
            group[-1].end_ns + policy.credit.claim_window_ns
            if policy.credit.claim_window_ns is not None and any(c for c, _ in credited)
            else None
        )
        if start <= group[0].start_ns < end:
            events.append(_event(group, credited, claim_by))
        for part, (span, why) in zip(group, credited, strict=True):
            outage = _clipped(part, span, why, claim_by, start, end)
            if outage is not None:
                outages.append(outage)
    return outages, events


def _event(
    group: Sequence[_Part],
    credited: Sequence[tuple[tuple[int, int] | None, str]],
    claim_by: int | None,
) -> Event:
    return Event(
        start_ns=group[0].start_ns,
        end_ns=group[-1].end_ns,
        credited_ns=sum(span[1] - span[0] for span, _why in credited if span is not None),
        host_ns=sum(p.end_ns - p.start_ns for p in group if p.credit_cause is Cause.HOST),
        claim_by_ns=claim_by,
    )


def _touching(parts: Sequence[_Part]) -> list[list[_Part]]:
    groups: list[list[_Part]] = []
    for part in parts:
        if groups and groups[-1][-1].end_ns == part.start_ns:
            groups[-1].append(part)
        else:
            groups.append([part])
    return groups


def _credited_spans(
    group: Sequence[_Part], policy: Policy, tickets: Sequence[int]
) -> list[tuple[tuple[int, int] | None, str]]:
    """Per part, the span that earns a credit (or None) and why: credit minimums are
    judged on the incident's whole time of that cause; with ``from_ticket``, credited
    time starts at the first ticket opened during the incident."""
    by_cause: dict[Cause, int] = defaultdict(int)
    for part in group:
        by_cause[part.credit_cause] += part.end_ns - part.start_ns
    opened = [t for t in tickets if group[0].start_ns <= t < group[-1].end_ns]
    credit_from = opened[0] if policy.credit.from_ticket and opened else group[0].start_ns
    result: list[tuple[tuple[int, int] | None, str]] = []
    for part in group:
        minimum = policy.cause_rule(part.credit_cause).credit_min_ns
        if not part.credit:
            result.append((None, part.credit_rule))
        elif by_cause[part.credit_cause] <= minimum:
            why = f"not longer than {minimum / MINUTE:g} minutes ({part.credit_rule})"
            result.append((None, why))
        elif part.end_ns <= credit_from:
            result.append((None, "before the support ticket was opened"))
        else:
            result.append(((max(part.start_ns, credit_from), part.end_ns), part.credit_rule))
    return result


def _clipped(
    part: _Part,
    credited: tuple[int, int] | None,
    credit_rule: str,
    claim_by: int | None,
    start: int,
    end: int,
) -> Outage | None:
    low, high = max(part.start_ns, start), min(part.end_ns, end)
    if low >= high:
        return None
    credited_ns = 0
    if credited is not None:
        credited_ns = max(0, min(credited[1], high) - max(credited[0], low))
    return Outage(low, high, part.cause, part.counted, part.rule, credited_ns, credit_rule,
                  part.source, claim_by if credited_ns else None)  # fmt: skip


def _clip_spans(spans: Sequence[ItemSpan], start: int, end: int) -> list[ItemSpan]:
    return [
        replace(s, start_ns=max(s.start_ns, start), end_ns=min(s.end_ns, end))
        for s in spans
        if s.start_ns < end and start < s.end_ns
    ]


def _month(
    item: ServiceItem,
    policy: Policy,
    month: str,
    start: int,
    end: int,
    spans: Sequence[ItemSpan],
    outages: Sequence[Outage],
    events: Sequence[Event],
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
    deadlines = [e.claim_by_ns for e in events if e.claim_by_ns is not None]
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
        credit=compute_credit(item, policy, (start, end), availability, outages, events),
        claim_deadline_ns=min(deadlines, default=None),
        findings=_findings(policy, events),
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


def _findings(policy: Policy, events: Sequence[Event]) -> tuple[str, ...]:
    limit = policy.hardware_replacement_ns
    if limit is None:
        return ()
    return tuple(
        f"host outage from {_utc(e.start_ns)} lasted {e.host_ns / HOUR:.1f} h, beyond the "
        f"{limit / HOUR:g} h hardware replacement commitment"
        for e in events
        if e.host_ns > limit
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
