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
from agent.uplink import ObservationBuffer, Uplink
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


def agent_for(settings: CollectorSettings, agent_id: str, **collector: Any) -> AgentConfig:
    """An agent config pointed at ``settings``' collector (plaintext unless tls is given)."""
    if "tls" not in collector:
        collector["insecure"] = True
    return config_from_mapping(
        {"agent_id": agent_id, "collector": {"address": settings.listen, **collector}}
    )


def uplink(config: AgentConfig, batch_size: int) -> tuple[Uplink, ObservationBuffer]:
    buffer = ObservationBuffer(10_000, batch_size=batch_size)
    return Uplink(config, buffer, lambda: up.Heartbeat(sent_unix_ns=time.time_ns())), buffer
