"""Loss and latency statistics shared by probes and the one-shot CLI."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z_95 = 1.959963984540054


def wilson_interval(failures: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (here: the loss ratio).

    Unlike the normal approximation it stays inside [0, 1] and is honest for
    small counts and ratios near zero, which is where SLA loss thresholds live.
    """
    if trials <= 0:
        return (0.0, 1.0)
    p = failures / trials
    z2 = z * z
    denom = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    # At the edges the bounds are exactly 0 and 1; floating point would leave ~1e-18.
    low = 0.0 if failures == 0 else max(0.0, centre - half)
    high = 1.0 if failures == trials else min(1.0, centre + half)
    return (low, high)


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of already sorted values (q in [0, 100])."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True, slots=True)
class RttSummary:
    """RTT statistics of a set of samples, in nanoseconds."""

    min_ns: int
    mean_ns: int
    max_ns: int
    stddev_ns: int

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> RttSummary | None:
        if not samples_ns:
            return None
        n = len(samples_ns)
        mean = sum(samples_ns) / n
        var = sum((s - mean) ** 2 for s in samples_ns) / n
        return cls(min(samples_ns), round(mean), max(samples_ns), round(math.sqrt(var)))
