"""Wires config, probes, scheduler and uplink together and runs the agent daemon."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from dataclasses import asdict, dataclass

from agent.config import AgentConfig, CheckKind
from agent.host import HostSampler, peak_rss_bytes, process_cpu_seconds
from agent.net.icmp_engine import IcmpEngine
from agent.probes import build_probe
from agent.scheduler import Scheduler
from agent.uplink import ObservationBuffer, Uplink
from slawatch.v1 import uplink_pb2 as up

log = logging.getLogger(__name__)

STOP_FLUSH_TIMEOUT = 5.0
# On stop, rounds in flight may finish (and be sent) for this long.
STOP_ROUND_GRACE = 3.0


@dataclass(slots=True)
class RunSummary:
    """What the agent did, printed at exit (and used by the benchmark)."""

    checks: int
    seconds: float
    rounds_started: int
    rounds_skipped: int
    rounds_failed: int
    icmp_packets_sent: int
    icmp_replies_received: int
    observations_sent: int
    observations_acked: int
    observations_dropped: int
    batches_rejected: int
    # CPU used from the moment probing started (start-up imports excluded).
    cpu_seconds_probing: float
    peak_rss_bytes: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _open_icmp(config: AgentConfig) -> IcmpEngine | None:
    targets = [c.target for c in config.checks if c.kind is CheckKind.ICMP]
    if not targets:
        return None
    engine = IcmpEngine()
    for family in {socket.AF_INET6 if ":" in t else socket.AF_INET for t in targets}:
        engine.open(family)  # raises IcmpPermissionError now, not at the first round
    return engine


async def run_agent(config: AgentConfig, duration: float | None = None) -> RunSummary:
    engine = _open_icmp(config)
    probes = [build_probe(check, engine) for check in config.checks]
    buffer = ObservationBuffer(config.collector.buffer_max, config.collector.batch_max)
    scheduler = Scheduler(probes, buffer.put, config.jitter)
    sampler = HostSampler()

    def heartbeat() -> up.Heartbeat:
        snapshot = sampler.snapshot(len(probes), scheduler.stats.rounds_skipped)
        return up.Heartbeat(sent_unix_ns=time.time_ns(), host=snapshot)

    uplink = Uplink(config, buffer, heartbeat)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if config.collector.insecure:
        log.warning(
            "collector.insecure: plaintext to %s, and the collector cannot tell who "
            "we are; use collector.tls outside a lab",
            config.collector.address,
        )
    cpu_start, started = process_cpu_seconds(), time.monotonic()
    log.info(
        "agent %s: %d checks, collector %s", config.agent_id, len(probes), config.collector.address
    )
    scheduling = asyncio.create_task(scheduler.run(STOP_ROUND_GRACE))
    uplinking = asyncio.create_task(uplink.run())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait(
            {uplinking, stopping}, timeout=duration, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        scheduling.cancel()
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scheduling
        if not uplinking.done():
            await uplink.stop(STOP_FLUSH_TIMEOUT)
            uplinking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await uplinking  # re-raises UplinkError if the collector refused us
        if engine is not None:
            engine.close()
    return RunSummary(
        checks=len(probes),
        seconds=round(time.monotonic() - started, 3),
        rounds_started=scheduler.stats.rounds_started,
        rounds_skipped=scheduler.stats.rounds_skipped,
        rounds_failed=scheduler.stats.rounds_failed,
        icmp_packets_sent=engine.packets_sent if engine else 0,
        icmp_replies_received=engine.replies_received if engine else 0,
        observations_sent=uplink.stats.observations_sent,
        observations_acked=uplink.stats.observations_acked,
        observations_dropped=buffer.dropped,
        batches_rejected=uplink.stats.batches_rejected,
        cpu_seconds_probing=round(process_cpu_seconds() - cpu_start, 4),
        peak_rss_bytes=peak_rss_bytes(),
    )
