"""The probe interface and the factory that turns a check's config into a probe."""

from __future__ import annotations

import time
from typing import Protocol

from agent.config import CheckConfig, CheckKind
from agent.net.icmp_engine import IcmpEngine
from agent.observation import Observation
from slawatch.v1 import observation_pb2 as pb

WIRE_KIND: dict[CheckKind, pb.CheckKind] = {
    CheckKind.ICMP: pb.CHECK_KIND_ICMP,
    CheckKind.TCP: pb.CHECK_KIND_TCP,
}


class Probe(Protocol):
    """Runs one round of one check and reports it as an observation.

    A round never raises for a failed measurement: refusals, timeouts and
    unreachable targets are outcomes with an error class. Exceptions mean a
    bug or a local fault; the scheduler turns them into ``OUTCOME_ERROR``.
    """

    check: CheckConfig

    async def run_round(self) -> Observation: ...


class RoundClock:
    """Start time of a round on the wall clock, duration on the monotonic clock."""

    __slots__ = ("_start_mono", "start_unix_ns")

    def __init__(self) -> None:
        self.start_unix_ns = time.time_ns()
        self._start_mono = time.monotonic_ns()

    def elapsed_ns(self) -> int:
        return time.monotonic_ns() - self._start_mono


def build_probe(check: CheckConfig, icmp_engine: IcmpEngine | None) -> Probe:
    # Imported here so each probe module stays independent of the others.
    if check.kind is CheckKind.ICMP:
        from agent.probes.icmp import IcmpProbe

        if icmp_engine is None:
            raise ValueError("ICMP checks need the shared ICMP engine")
        return IcmpProbe(check, icmp_engine)
    if check.kind is CheckKind.TCP:
        from agent.probes.tcp import TcpProbe

        return TcpProbe(check)
    raise ValueError(f"no probe for kind {check.kind}")
