"""Exact binomial acceptance regions, computed independently of slawatch's own statistics."""

from __future__ import annotations

import math


def _log_pmf(k: int, n: int, p: float) -> float:
    return (
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        + k * math.log(p) + (n - k) * math.log1p(-p)
    )  # fmt: skip


def acceptance_region(n: int, p: float, confidence: float = 0.999) -> tuple[int, int]:
    """Counts [low, high] that Binomial(n, p) falls inside with at least ``confidence``.

    Equal tails: P(X < low) <= alpha/2 and P(X > high) <= alpha/2.
    """
    tail = (1 - confidence) / 2
    pmf = [math.exp(_log_pmf(k, n, p)) for k in range(n + 1)]
    low, cumulative = 0, 0.0
    while cumulative + pmf[low] <= tail:
        cumulative += pmf[low]
        low += 1
    high, cumulative = n, 0.0
    while cumulative + pmf[high] <= tail:
        cumulative += pmf[high]
        high -= 1
    return low, high
