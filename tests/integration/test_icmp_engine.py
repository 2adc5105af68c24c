"""The ICMP engine on real sockets, inside a lab host where no other ICMP flows."""

from __future__ import annotations

import json
import sys

import pytest

from tests.lab.netlab import Lab

pytestmark = pytest.mark.lab

_TWO_ENGINES = """
import asyncio, json
from agent.net.icmp_engine import IcmpEngine

async def main():
    first, second = IcmpEngine(), IcmpEngine()
    try:
        a, b = await asyncio.gather(first.ping("127.0.0.2", 40, 0.001, 1.0),
                                    second.ping("127.0.0.3", 25, 0.001, 1.0))
    finally:
        first.close()
        second.close()
    print(json.dumps([a.received, b.received, first.packets_seen, second.packets_seen]))

asyncio.run(main())
"""

_RTTS = """
import asyncio, json, sys
from agent.net.icmp_engine import IcmpEngine

async def main():
    engine = IcmpEngine()
    try:
        print(json.dumps((await engine.ping(sys.argv[1], 20, 0.001, 1.0)).rtts_ns))
    finally:
        engine.close()

asyncio.run(main())
"""


def test_engines_see_only_their_own_replies(lab: Lab) -> None:
    host = lab.host("pinger")
    a_received, b_received, a_seen, b_seen = json.loads(
        host.run([sys.executable, "-c", _TWO_ENGINES])
    )
    assert (a_received, b_received) == (40, 25)
    # The kernel filter keeps out our own requests (looped back on lo) and the
    # other engine's replies: each engine is handed exactly its replies.
    assert (a_seen, b_seen) == (40, 25)


@pytest.mark.parametrize("destination", ["127.0.0.1", "::1"])
def test_round_trip_times_are_plausible(lab: Lab, destination: str) -> None:
    rtts = json.loads(lab.host("pinger").run([sys.executable, "-c", _RTTS, destination]))
    assert len(rtts) == 20
    assert all(0 < rtt < 50_000_000 for rtt in rtts)  # loopback: well under 50 ms
