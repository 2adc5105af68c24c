"""The egress-loss verdict from a window's counts (pure function; the lab test runs it live)."""

from __future__ import annotations

import pytest

from agent.net.icmp_engine import PingResult
from agent.probes.egress_loss import verdict
from slawatch.v1 import observation_pb2 as pb

V = pb.EgressLossDetail


def window(sent: int, lost: int, address: str = "198.18.3.1") -> PingResult:
    return PingResult(address, sent, [1_000_000] * (sent - lost))


@pytest.mark.parametrize(
    ("sent", "lost", "expected"),
    [
        (400, 8, V.VERDICT_EXCESS),  # 2%: the interval is 1.02% .. 3.9%
        (300, 6, V.VERDICT_UNDECIDED),  # 2% too, but not enough echoes yet
        (400, 0, V.VERDICT_CLEAR),  # upper bound 0.95%
        (300, 0, V.VERDICT_UNDECIDED),  # upper bound 1.26%
        (10_000, 100, V.VERDICT_UNDECIDED),  # exactly 1% never decides
        (1000, 30, V.VERDICT_EXCESS),
        (1500, 4, V.VERDICT_CLEAR),
    ],
)
def test_verdict_follows_the_wilson_interval(sent: int, lost: int, expected: int) -> None:
    decided, low, high = verdict(window(sent, lost), None, 0.01)
    assert decided == expected
    assert low <= lost / sent <= high


def test_loss_at_the_hop_but_not_beyond_it_is_rate_limiting() -> None:
    hop, beyond = window(1000, 200), window(1000, 0, "198.18.9.9")
    assert verdict(hop, beyond, 0.01)[0] == V.VERDICT_RATE_LIMITED
    # Loss beyond too: the path loses packets, whatever the hop does.
    assert verdict(hop, window(1000, 150, "198.18.9.9"), 0.01)[0] == V.VERDICT_EXCESS
    # Beyond not yet clear (too few echoes): no claim of rate limiting.
    assert verdict(hop, window(100, 0, "198.18.9.9"), 0.01)[0] == V.VERDICT_EXCESS


@pytest.mark.parametrize(
    ("loss", "echoes", "decided"),
    [  # the table in docs/packet-loss.md: echoes needed to decide against 1%
        (0.0, 400, V.VERDICT_CLEAR),
        (0.003, 730, V.VERDICT_CLEAR),
        (0.02, 400, V.VERDICT_EXCESS),
        (0.03, 50, V.VERDICT_EXCESS),
    ],
)
def test_the_documented_echo_counts_decide_and_half_of_them_do_not(
    loss: float, echoes: int, decided: int
) -> None:
    assert verdict(window(echoes, round(loss * echoes)), None, 0.01)[0] == decided
    half = echoes // 2
    assert verdict(window(half, round(loss * half)), None, 0.01)[0] == V.VERDICT_UNDECIDED
