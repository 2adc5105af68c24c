"""What the uplink tests share: a collector and an agent config on loopback, observations."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.config import AgentConfig, config_from_mapping
from agent.observation import Observation
from agent.outbox import Outbox
from agent.spool import Spool, SpoolBounds
from agent.uplink import Uplink, UplinkStats
from collector.server import CollectorSettings
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up
from tests.conftest import free_port


def observation(index: int) -> Observation:
    return Observation(
        check_id="icmp-x", kind=pb.CHECK_KIND_ICMP, target="198.18.0.9",
        start_unix_ns=time.time_ns() - 10**9 + index, duration_ns=1000,
        outcome=pb.OUTCOME_OK, packets_sent=1, packets_received=1,
        rtt_samples_ns=[40_000 + index],
    )  # fmt: skip


def stored_starts(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT start_ns FROM observations ORDER BY start_ns")]


async def until(predicate: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def collector_on_loopback(tmp_path: Path, **settings: Any) -> CollectorSettings:
    """A collector on a free loopback port, its store in tmp_path."""
    return CollectorSettings(listen=f"127.0.0.1:{free_port()}", db_path=tmp_path / "c.db",
                             metrics_port=free_port(), **settings)  # fmt: skip


def agent_for(
    settings: CollectorSettings, agent_id: str, spool_name: str | None = None, **collector: Any
) -> AgentConfig:
    """An agent config pointed at ``settings``' collector (plaintext unless tls is given);
    its spool beside the collector's store."""
    if "tls" not in collector:
        collector["insecure"] = True
    spool = {"dir": str(settings.db_path.parent / f"spool-{spool_name or agent_id}")}
    return config_from_mapping(
        {"agent_id": agent_id, "collector": {"address": settings.listen, **collector},
         "spool": spool}
    )  # fmt: skip


class LinkedAgent:
    """The agent's sending half as the runner wires it: outbox -> spool -> uplink."""

    def __init__(self, config: AgentConfig, batch_size: int) -> None:
        self.spool = Spool(Path(config.spool.dir), SpoolBounds())
        self.uplink = Uplink(config, self.spool, lambda: up.Heartbeat(sent_unix_ns=time.time_ns()))
        flush = config.collector.flush_interval
        self.outbox = Outbox(self.spool, batch_size, flush, self.uplink.notify)

    @property
    def stats(self) -> UplinkStats:
        return self.uplink.stats

    async def run(self) -> None:
        sealing = asyncio.create_task(self.outbox.run())
        try:
            await self.uplink.run()
        finally:
            sealing.cancel()
            self.spool.close()

    async def stop(self, timeout: float) -> bool:
        self.outbox.seal()
        return await self.uplink.stop(timeout)


def uplink(config: AgentConfig, batch_size: int) -> tuple[LinkedAgent, Outbox]:
    linked = LinkedAgent(config, batch_size)
    return linked, linked.outbox
