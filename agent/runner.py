"""Wires config, probes, scheduler, outbox, spool and uplink together: the agent daemon.

scheduler --rounds--> outbox --sealed batches--> spool (disk) --> uplink --> collector
                                                                 <-- acks, config pushes
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from agent.check_options import EgressLossOptions
from agent.config import AgentConfig, CheckConfig, CheckKind
from agent.host import HostSampler, peak_rss_bytes, process_cpu_seconds
from agent.net.icmp_engine import IcmpEngine
from agent.outbox import Outbox
from agent.probes import Probe, build_probe
from agent.pushed_checks import PushedChecks
from agent.scheduler import Scheduler
from agent.spool import Spool, SpoolBounds
from agent.uplink import Uplink
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
    # Sealed into the spool; sent (resends included); acked by the collector.
    observations_spooled: int
    observations_sent: int
    observations_acked: int
    # Dropped unsent to keep the spool within its bounds (and reported).
    observations_dropped: int
    batches_rejected: int
    # Left in the spool at exit, to be sent after the next start.
    batches_unacked: int
    # CPU used from the moment probing started (start-up imports excluded).
    cpu_seconds_probing: float
    peak_rss_bytes: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _probe_builder(engine: IcmpEngine) -> Callable[[CheckConfig], Probe]:
    def build(check: CheckConfig) -> Probe:
        if check.kind in (CheckKind.ICMP, CheckKind.EGRESS_LOSS):
            # Opened now, so a missing privilege shows at start (or rejects a push).
            for address in _icmp_addresses(check):
                engine.open(socket.AF_INET6 if ":" in address else socket.AF_INET)
        return build_probe(check, engine)

    return build


def _icmp_addresses(check: CheckConfig) -> list[str]:
    """Every address a check pings: its target, and an egress-loss check's border and beyond."""
    options = check.options
    extra = [options.border, options.beyond] if isinstance(options, EgressLossOptions) else []
    return [check.target, *(address for address in extra if address)]


async def run_agent(
    config: AgentConfig, duration: float | None = None, audit: TextIO | None = None
) -> RunSummary:
    spool = Spool(Path(config.spool.dir), SpoolBounds(config.spool.max_bytes, config.spool.max_age))
    engine = IcmpEngine()
    try:
        return await _run(config, spool, engine, duration, audit)
    finally:
        engine.close()
        spool.close()


async def _run(
    config: AgentConfig,
    spool: Spool,
    engine: IcmpEngine,
    duration: float | None,
    audit: TextIO | None,
) -> RunSummary:
    build = _probe_builder(engine)
    probes = [build(check) for check in config.checks]
    sampler = HostSampler()
    pushed: PushedChecks | None = None

    def heartbeat() -> up.Heartbeat:
        snapshot = sampler.snapshot(scheduler.check_count, scheduler.stats.rounds_skipped)
        return up.Heartbeat(sent_unix_ns=time.time_ns(), host=snapshot)

    uplink = Uplink(
        config,
        spool,
        heartbeat,
        on_config=lambda push: pushed.take(push) if pushed else _not_ready(push),
        config_version=lambda: pushed.version if pushed else "",
    )
    c = config.collector
    outbox = Outbox(spool, c.batch_max, c.flush_interval, uplink.notify, audit)
    scheduler = Scheduler(probes, outbox.put, config.jitter)
    pushed = PushedChecks(
        Path(config.spool.dir), {c.id for c in config.checks}, build, scheduler.add,
        scheduler.retire,
    )  # fmt: skip
    pushed.load_cache()
    if spool.stats.recovered_batches:
        log.info("spool %s: %d batches from an earlier run still to send", spool.directory,
                 spool.stats.recovered_batches)  # fmt: skip
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
    sealing = asyncio.create_task(outbox.run())
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
        sealing.cancel()
        outbox.seal()  # the last rounds reach the disk before anything else
        if not uplinking.done():
            await uplink.stop(STOP_FLUSH_TIMEOUT)
            uplinking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await uplinking  # re-raises UplinkError if the collector refused us
    return RunSummary(
        checks=scheduler.check_count,
        seconds=round(time.monotonic() - started, 3),
        rounds_started=scheduler.stats.rounds_started,
        rounds_skipped=scheduler.stats.rounds_skipped,
        rounds_failed=scheduler.stats.rounds_failed,
        icmp_packets_sent=engine.packets_sent,
        icmp_replies_received=engine.replies_received,
        observations_spooled=outbox.observations_spooled,
        observations_sent=uplink.stats.observations_sent,
        observations_acked=uplink.stats.observations_acked,
        observations_dropped=spool.stats.observations_dropped + outbox.observations_lost,
        batches_rejected=uplink.stats.batches_rejected,
        batches_unacked=spool.unacked_batches,
        cpu_seconds_probing=round(process_cpu_seconds() - cpu_start, 4),
        peak_rss_bytes=peak_rss_bytes(),
    )


def _not_ready(push: up.ConfigPush) -> up.ConfigStatus:
    return up.ConfigStatus(version=push.version, accepted=False, reason="agent still starting")
