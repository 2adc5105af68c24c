"""The ICMP engine on real sockets, on loopback."""

from __future__ import annotations

import asyncio
import os

import pytest

from agent.net.icmp_engine import IcmpEngine

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP sockets need root")


def test_engines_see_only_their_own_replies() -> None:
    async def scenario() -> tuple[int, int, int, int]:
        first, second = IcmpEngine(), IcmpEngine()
        try:
            a, b = await asyncio.gather(
                first.ping("127.0.0.2", 40, 0.001, 1.0), second.ping("127.0.0.3", 25, 0.001, 1.0)
            )
        finally:
            first.close()
            second.close()
        return a.received, b.received, first.packets_seen, second.packets_seen

    a_received, b_received, a_seen, b_seen = asyncio.run(scenario())
    assert (a_received, b_received) == (40, 25)
    # The kernel filter keeps out our own requests (looped back on lo) and the
    # other engine's replies: each engine is handed exactly its replies.
    assert (a_seen, b_seen) == (40, 25)


@pytest.mark.parametrize("destination", ["127.0.0.1", "::1"])
def test_round_trip_times_are_plausible(destination: str) -> None:
    async def scenario() -> list[int]:
        engine = IcmpEngine()
        try:
            return (await engine.ping(destination, 20, 0.001, 1.0)).rtts_ns
        finally:
            engine.close()

    rtts = asyncio.run(scenario())
    assert len(rtts) == 20
    assert all(0 < rtt < 50_000_000 for rtt in rtts)  # loopback: well under 50 ms
