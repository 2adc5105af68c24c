"""The egress-loss check: is loss toward the egress hop above the contract's bound?

Closte defines Excess Packet Loss as loss above 1% between the instance and
one hop past the border router (the egress provider's first router). One
round is one window of ``packets`` echoes to that hop, ``spacing`` apart, on
the shared ICMP engine (no scapy on this path). The window's verdict comes
from the 95% Wilson interval of its loss ratio:

* the whole interval above the threshold: **excess**;
* the whole interval below it: **clear**;
* otherwise **undecided**: the window did not carry enough evidence, and (if
  ``adaptive``) the next window sends twice the echoes, up to ``max_packets``,
  in the same time.

Routers answer pings from their control plane, which often rate limits ICMP.
When a ``beyond`` address (past the egress hop, so its echoes cross the same
path) loses nothing measurable while the egress hop loses replies, the loss
is the hop rate limiting its own replies: **rate_limited**, not path loss.
"""

from __future__ import annotations

import asyncio
import ipaddress

from agent.check_options import EgressLossOptions
from agent.config import MIN_SPACING, CheckConfig
from agent.net.icmp_engine import IcmpEngine, PingResult
from agent.observation import Observation
from agent.probes.base import RoundClock
from agent.probes.icmp import ping_observation
from agent.stats import wilson_interval
from slawatch.v1 import observation_pb2 as pb

Verdict = pb.EgressLossDetail.Verdict


def verdict(
    egress: PingResult, beyond: PingResult | None, threshold: float
) -> tuple[Verdict, float, float]:
    """The window's verdict and the egress hop's 95% loss interval."""
    low, high = _interval(egress)
    if beyond is not None and beyond.sent and low > threshold and _interval(beyond)[1] < threshold:
        return pb.EgressLossDetail.VERDICT_RATE_LIMITED, low, high
    if low > threshold:
        return pb.EgressLossDetail.VERDICT_EXCESS, low, high
    if high < threshold:
        return pb.EgressLossDetail.VERDICT_CLEAR, low, high
    return pb.EgressLossDetail.VERDICT_UNDECIDED, low, high


def _interval(result: PingResult) -> tuple[float, float]:
    return wilson_interval(result.sent - result.received, result.sent)


def _hop(result: PingResult) -> pb.HopLoss:
    low, high = _interval(result)
    return pb.HopLoss(address=result.destination, sent=result.sent, received=result.received,
                      loss_lower_ratio=low, loss_upper_ratio=high)  # fmt: skip


class EgressLossProbe:
    def __init__(self, check: CheckConfig, engine: IcmpEngine) -> None:
        self.check = check
        self._engine = engine
        options = check.options
        self._options = options if isinstance(options, EgressLossOptions) else EgressLossOptions()
        self._destination = str(ipaddress.ip_address(check.target))
        # The window stays as long as configured; adaptive rounds send more in it.
        self._window = check.packets * check.spacing
        self._packets = check.packets

    async def run_round(self) -> Observation:
        clock = RoundClock()
        packets = self._packets
        spacing = max(MIN_SPACING, self._window / packets)
        options = self._options
        hops = [self._destination, options.border, options.beyond]
        results = await asyncio.gather(*(self._ping(address, packets, spacing) for address in hops))
        egress, border, beyond = results
        assert egress is not None
        decided, low, high = verdict(egress, beyond, options.threshold)
        self._packets = self._next_packets(decided)
        report = pb.EgressLossDetail(
            verdict=decided, threshold_ratio=options.threshold, loss_lower_ratio=low,
            loss_upper_ratio=high, next_window_packets=self._packets,
        )  # fmt: skip
        if border is not None:
            report.border.CopyFrom(_hop(border))
        if beyond is not None:
            report.beyond.CopyFrom(_hop(beyond))
        return ping_observation(self.check, clock, egress, report)

    async def _ping(self, address: str | None, packets: int, spacing: float) -> PingResult | None:
        if address is None:
            return None
        return await self._engine.ping(address, packets, spacing, self.check.timeout)

    def _next_packets(self, decided: Verdict) -> int:
        """More echoes while undecided (the same window, a higher rate); back when decided."""
        if decided != pb.EgressLossDetail.VERDICT_UNDECIDED or not self._options.adaptive:
            return self.check.packets
        fastest = max(1, int(self._window / MIN_SPACING))
        return min(self._packets * 2, self._options.max_packets, fastest)
