"""Wilson interval and percentiles against independently computed values."""

from __future__ import annotations

import math

import pytest

from agent.stats import Z_95, RttSummary, percentile, wilson_interval


@pytest.mark.parametrize(
    ("failures", "trials", "low", "high"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single
        # proportion", Table I, method 3 (Wilson score without correction).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_published_values(
    failures: int, trials: int, low: float, high: float
) -> None:
    got_low, got_high = wilson_interval(failures, trials)
    assert got_low == pytest.approx(low, abs=1e-4)
    assert got_high == pytest.approx(high, abs=1e-4)


@pytest.mark.parametrize(("failures", "trials"), [(40, 2000), (3, 1000), (500, 1000)])
def test_wilson_bounds_solve_the_score_equation(failures: int, trials: int) -> None:
    # Each bound p satisfies |p_hat - p| = z * sqrt(p (1 - p) / n).
    p_hat = failures / trials
    for bound in wilson_interval(failures, trials):
        if 0 < bound < 1:
            score = abs(p_hat - bound) / math.sqrt(bound * (1 - bound) / trials)
            assert score == pytest.approx(Z_95, rel=1e-9)


def test_wilson_interval_without_trials_is_uninformative() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7], 99) == 7
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_rtt_summary() -> None:
    summary = RttSummary.of([100, 200, 300])
    assert summary is not None
    assert (summary.min_ns, summary.mean_ns, summary.max_ns) == (100, 200, 300)
    assert summary.stddev_ns == 82  # population stddev of 100, 200, 300 = 81.65
    assert RttSummary.of([]) is None
