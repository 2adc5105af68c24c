"""Properties of the SLA engine that must hold for any timeline (hypothesis)."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.sla.engine import evaluate, month_bounds
from collector.sla.model import (
    HOUR,
    MINUTE,
    Cause,
    CheckKey,
    Evidence,
    MaintenanceKind,
    MaintenanceWindow,
    Override,
    Sample,
    ServiceItem,
)
from collector.sla.policy import builtin_policies

POLICIES = builtin_policies()
T = TypeVar("T")
CHECKS = (CheckKey("n", "a"), CheckKey("n", "b"))
POLICY_NAMES = sorted(POLICIES)
START, _ = month_bounds("2026-04", POLICIES["closte"])

marks = st.lists(st.sampled_from(". x"), min_size=1, max_size=120)
causes = st.sampled_from([None, *Cause])


@st.composite
def timelines(draw: st.DrawFn) -> tuple[Sample, ...]:
    """Two checks, one result a minute from the month's start, random causes."""
    samples: list[Sample] = []
    for check in CHECKS:
        for i, mark in enumerate(draw(marks)):
            if mark != " ":
                cause = None if mark == "." else draw(causes)
                samples.append(Sample(check, START + i * MINUTE, mark == ".", MINUTE, cause))
    return tuple(samples)


def _item(policy: str) -> ServiceItem:
    return ServiceItem("i", policy, Decimal("100"), "USD", CHECKS, prior_invoice=Decimal("100"))


def _month(policy: str, samples: tuple[Sample, ...]):  # type: ignore[no-untyped-def]
    return evaluate(_item(policy), POLICIES[policy], "2026-04", Evidence(samples))


@given(timelines(), st.sampled_from(POLICY_NAMES))
@settings(max_examples=150, deadline=None)
def test_downtime_by_cause_sums_to_the_total_and_nothing_counts_twice(
    samples: tuple[Sample, ...], policy: str
) -> None:
    month = _month(policy, samples)
    total = sum(o.duration_ns for o in month.outages)
    assert sum(t.counted_ns + t.excluded_ns for t in month.by_cause.values()) == total
    assert sum(t.counted_ns for t in month.by_cause.values()) == month.counted_down_ns
    spans = sorted((o.start_ns, o.end_ns) for o in month.outages)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, "two outages overlap"
    assert all(month.period_start_ns <= s < e <= month.period_end_ns for s, e in spans)
    period = month.period_end_ns - month.period_start_ns
    unknown_left_out = month.unknown_ns if POLICIES[policy].unknown == "exclude" else 0
    assert month.scheduled_ns + month.excluded_ns + unknown_left_out == period
    assert 0.0 <= month.availability <= 1.0


@given(timelines(), st.sampled_from(POLICY_NAMES), st.data())
@settings(max_examples=150, deadline=None)
def test_adding_a_failure_never_raises_availability(
    samples: tuple[Sample, ...], policy: str, data: st.DataObject
) -> None:
    """Failures without a cause (so the new one cannot re-attribute a run)."""
    plain = tuple(Sample(s.check, s.start_ns, s.ok, s.interval_ns) for s in samples)
    passed = [i for i, s in enumerate(plain) if s.ok]
    if not passed:
        return
    index = data.draw(st.sampled_from(passed))
    worse = list(plain)
    worse[index] = Sample(plain[index].check, plain[index].start_ns, False, MINUTE)
    assert _month(policy, tuple(worse)).availability <= _month(policy, plain).availability


@st.composite
def windows(draw: st.DrawFn) -> tuple[MaintenanceWindow, ...]:
    found = []
    for _ in range(draw(st.integers(0, 3))):
        start = START + draw(st.integers(0, 100)) * MINUTE
        length = draw(st.integers(1, 60)) * MINUTE
        announced = start - draw(st.integers(0, 100)) * HOUR
        kind = draw(st.sampled_from(list(MaintenanceKind)))
        found.append(MaintenanceWindow(None, start, start + length, announced, kind))
    return tuple(found)


@st.composite
def overrides(draw: st.DrawFn) -> tuple[Override, ...]:
    found = []
    for _ in range(draw(st.integers(0, 2))):
        start = START + draw(st.integers(0, 100)) * MINUTE
        length = draw(st.integers(1, 60)) * MINUTE
        found.append(Override("i", start, start + length, draw(st.sampled_from(list(Cause))), "x"))
    return tuple(found)


@given(
    timelines(), windows(), overrides(), st.sampled_from(POLICY_NAMES),
    st.randoms(use_true_random=False),
)  # fmt: skip
@settings(max_examples=150, deadline=None)
def test_the_order_of_inputs_does_not_matter(
    samples: tuple[Sample, ...],
    maintenance: tuple[MaintenanceWindow, ...],
    verdicts: tuple[Override, ...],
    policy: str,
    shuffler: random.Random,
) -> None:
    def shuffled(items: tuple[T, ...]) -> tuple[T, ...]:
        copy = list(items)
        shuffler.shuffle(copy)
        return tuple(copy)

    given_order = Evidence(samples, maintenance, (), verdicts)
    other_order = Evidence(shuffled(samples), shuffled(maintenance), (), shuffled(verdicts))
    service = _item(policy)
    assert evaluate(service, POLICIES[policy], "2026-04", other_order) == evaluate(
        service, POLICIES[policy], "2026-04", given_order
    )


@given(timelines(), windows(), overrides(), st.sampled_from(POLICY_NAMES))
@settings(max_examples=150, deadline=None)
def test_totals_hold_with_maintenance_and_overrides(
    samples: tuple[Sample, ...],
    maintenance: tuple[MaintenanceWindow, ...],
    verdicts: tuple[Override, ...],
    policy: str,
) -> None:
    month = evaluate(
        _item(policy), POLICIES[policy], "2026-04", Evidence(samples, maintenance, (), verdicts)
    )
    down = sum(o.duration_ns for o in month.outages)
    assert down == month.counted_down_ns + month.excluded_ns
    assert all(o.credited_ns <= o.duration_ns for o in month.outages)
    assert month.credit.amount >= 0
