"""The probe interface and the factory that turns a check's config into a probe."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar, cast

from agent.check_options import DnsOptions, HttpOptions, MailOptions
from agent.config import CheckConfig, CheckKind
from agent.net.icmp_engine import IcmpEngine
from agent.net.streams import Phase, ProbeFailure
from agent.observation import Observation
from slawatch.v1 import observation_pb2 as pb

WIRE_KIND: dict[CheckKind, pb.CheckKind] = {
    CheckKind.ICMP: pb.CHECK_KIND_ICMP,
    CheckKind.TCP: pb.CHECK_KIND_TCP,
    CheckKind.HTTP: pb.CHECK_KIND_HTTP,
    CheckKind.SMTP: pb.CHECK_KIND_SMTP,
    CheckKind.POP3: pb.CHECK_KIND_POP3,
    CheckKind.DNS: pb.CHECK_KIND_DNS,
    CheckKind.HOST: pb.CHECK_KIND_HOST,
    CheckKind.EGRESS_LOSS: pb.CHECK_KIND_EGRESS_LOSS,
    CheckKind.PATH: pb.CHECK_KIND_PATH,
}

Exchange = Callable[[Phase, Observation], Awaitable[None]]


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


async def run_exchange(check: CheckConfig, exchange: Exchange) -> Observation:
    """One request/response round (http, smtp, pop3, dns) within the check's timeout.

    ``exchange`` fills in the observation (detail, connect RTT) and raises
    ``ProbeFailure`` to say why the round failed; a timeout is reported with
    the step that was running.
    """
    clock = RoundClock()
    observation = Observation(
        check_id=check.id,
        kind=WIRE_KIND[check.kind],
        target=check.target,
        start_unix_ns=clock.start_unix_ns,
        duration_ns=0,
        outcome=pb.OUTCOME_OK,
        packets_sent=1,
    )
    phase = Phase()
    failure: ProbeFailure | None = None
    try:
        async with asyncio.timeout(check.timeout):
            await exchange(phase, observation)
    except TimeoutError:
        failure = phase.timeout_failure(check.timeout)
    except ProbeFailure as exc:
        failure = exc
    observation.duration_ns = clock.elapsed_ns()
    if failure is None:
        observation.packets_received = 1
    else:
        # A failed round counts nothing as received, so it carries no RTT either: a
        # connect time beside 0 received is a batch the collector refuses whole
        # (bad_rtt), with every other result in it (an HTTP 502 after a good connect).
        observation.rtt_samples_ns = []
        observation.outcome = failure.outcome
        observation.error_class = failure.error_class
        observation.error_detail = failure.detail[:1024]
    return observation


OptionsT = TypeVar("OptionsT", HttpOptions, MailOptions, DnsOptions)


class ExchangeProbe(Generic[OptionsT]):
    """Base of the request/response probes (http, smtp, pop3, dns): the kind's
    options, and one ``exchange`` per round inside ``run_exchange``."""

    options_type: type[OptionsT]

    def __init__(self, check: CheckConfig) -> None:
        self.check = check
        options = check.options
        self._options: OptionsT = (
            options if isinstance(options, self.options_type) else self.options_type()
        )

    async def run_round(self) -> Observation:
        return await run_exchange(self.check, self.exchange)

    async def exchange(self, phase: Phase, observation: Observation) -> None:
        raise NotImplementedError


_PROBE_MODULES = {
    CheckKind.ICMP: ("agent.probes.icmp", "IcmpProbe"),
    CheckKind.TCP: ("agent.probes.tcp", "TcpProbe"),
    CheckKind.HTTP: ("agent.probes.http", "HttpProbe"),
    CheckKind.SMTP: ("agent.probes.smtp", "SmtpProbe"),
    CheckKind.POP3: ("agent.probes.pop3", "Pop3Probe"),
    CheckKind.DNS: ("agent.probes.dns", "DnsProbe"),
    CheckKind.HOST: ("agent.probes.host", "HostProbe"),
    CheckKind.EGRESS_LOSS: ("agent.probes.egress_loss", "EgressLossProbe"),
    CheckKind.PATH: ("agent.probes.path", "PathProbe"),
}


def build_probe(check: CheckConfig, icmp_engine: IcmpEngine | None) -> Probe:
    """The probe for a check. Probe modules are imported only when a check needs
    them, so an agent that only pings never loads an HTTP or DNS library."""
    module_name, class_name = _PROBE_MODULES[check.kind]
    probe_class = getattr(importlib.import_module(module_name), class_name)
    if check.kind in (CheckKind.ICMP, CheckKind.EGRESS_LOSS):
        if icmp_engine is None:
            raise ValueError("ICMP checks need the shared ICMP engine")
        return cast(Probe, probe_class(check, icmp_engine))
    return cast(Probe, probe_class(check))
