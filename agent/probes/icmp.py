"""ICMP echo reachability and loss: one round is ``packets`` echoes ``spacing`` apart."""

from __future__ import annotations

import ipaddress
from collections import Counter

from google.protobuf.message import Message

from agent.config import CheckConfig
from agent.net.icmp_engine import IcmpEngine, PingResult
from agent.net.icmp_packet import Unreachable
from agent.observation import Observation
from agent.probes.base import WIRE_KIND, RoundClock
from slawatch.v1 import observation_pb2 as pb

_ERROR_CLASS = {
    Unreachable.NET: pb.ERROR_CLASS_NET_UNREACHABLE,
    Unreachable.HOST: pb.ERROR_CLASS_HOST_UNREACHABLE,
    Unreachable.PROHIBITED: pb.ERROR_CLASS_ADMIN_PROHIBITED,
    Unreachable.TTL_EXCEEDED: pb.ERROR_CLASS_NET_UNREACHABLE,
    Unreachable.OTHER: pb.ERROR_CLASS_HOST_UNREACHABLE,
}


class IcmpProbe:
    def __init__(self, check: CheckConfig, engine: IcmpEngine) -> None:
        self.check = check
        self._engine = engine
        self._destination = str(ipaddress.ip_address(check.target))

    async def run_round(self) -> Observation:
        clock = RoundClock()
        check = self.check
        result = await self._engine.ping(
            self._destination, check.packets, check.spacing, check.timeout
        )
        return ping_observation(check, clock, result)


def ping_observation(
    check: CheckConfig, clock: RoundClock, result: PingResult, detail: Message | None = None
) -> Observation:
    """A round of echoes as an observation (icmp, and egress_loss with its verdict)."""
    outcome, error_class, why = classify(result)
    return Observation(
        check_id=check.id,
        kind=WIRE_KIND[check.kind],
        target=check.target,
        start_unix_ns=clock.start_unix_ns,
        duration_ns=clock.elapsed_ns(),
        outcome=outcome,
        error_class=error_class,
        error_detail=why,
        packets_sent=result.sent,
        packets_received=result.received,
        rtt_samples_ns=result.rtts_ns,
        detail=detail,
    )


def classify(
    result: PingResult,
) -> tuple[pb.Outcome, pb.ErrorClass, str]:
    """A round is OK if any echo came back; otherwise say why none did."""
    if result.received:
        return pb.OUTCOME_OK, pb.ERROR_CLASS_NONE, ""
    if result.unreachable:
        reason, _count = Counter(result.unreachable).most_common(1)[0]
        return pb.OUTCOME_UNREACHABLE, _ERROR_CLASS[reason], f"ICMP {reason.name.lower()}"
    if result.sent == 0:
        detail = "; ".join(sorted(set(result.local_errors))) or "nothing sent"
        return pb.OUTCOME_ERROR, pb.ERROR_CLASS_LOCAL_ERROR, detail
    return pb.OUTCOME_TIMEOUT, pb.ERROR_CLASS_ECHO_TIMEOUT, f"no reply to {result.sent} echoes"
