"""The test helper for binomial regions is itself checked against known quantiles."""

from tests.binomial import acceptance_region


def test_fair_coin_region() -> None:
    # Binomial(100, 0.5): P(X <= 33) = 0.00044 and P(X <= 34) = 0.00089, so at the
    # 99.9% level (0.0005 per tail) the region starts at 34 and, by symmetry, ends at 66.
    assert acceptance_region(100, 0.5) == (34, 66)


def test_region_for_five_percent_of_two_thousand() -> None:
    low, high = acceptance_region(2000, 0.05)
    assert low < 100 < high
    assert 65 <= low <= 70
    assert 130 <= high <= 135
