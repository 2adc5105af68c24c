"""The agent's uplink against a real collector: acks, a collector restart, no duplicates."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from agent.config import config_from_mapping
from agent.observation import Observation
from agent.uplink import ObservationBuffer, Uplink
from collector.server import CollectorServer, CollectorSettings
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up
from tests.conftest import free_port


def _observation(index: int) -> Observation:
    return Observation(
        check_id="icmp-x", kind=pb.CHECK_KIND_ICMP, target="198.18.0.9",
        start_unix_ns=time.time_ns() - 10**9 + index, duration_ns=1000,
        outcome=pb.OUTCOME_OK, packets_sent=1, packets_received=1,
        rtt_samples_ns=[40_000 + index],
    )  # fmt: skip


def _stored_starts(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT start_ns FROM observations ORDER BY start_ns")]


async def _until(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_uplink_resends_unacked_after_collector_restart(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    port = free_port()
    settings = CollectorSettings(listen=f"127.0.0.1:{port}", db_path=db, metrics_port=free_port())
    config = config_from_mapping({
        "agent_id": "uplink-test",
        "collector": {"address": f"127.0.0.1:{port}", "insecure": True,
                      "flush_interval": 0.05, "batch_max": 7},
    })  # fmt: skip
    produced = [_observation(i) for i in range(80)]

    async def scenario() -> None:
        buffer = ObservationBuffer(10_000, batch_size=7)
        uplink = Uplink(config, buffer, lambda: up.Heartbeat(sent_unix_ns=time.time_ns()))
        servers = [CollectorServer(settings)]
        await servers[0].start()
        task = asyncio.create_task(uplink.run())
        try:
            for o in produced[:50]:
                buffer.put(o)
            await _until(lambda: uplink.stats.observations_acked == 50, 10)
            await servers[0].stop(grace=0.5)
            # While the collector is down the agent keeps buffering and retrying.
            for o in produced[50:]:
                buffer.put(o)
            await asyncio.sleep(0.5)
            servers.append(CollectorServer(settings))
            await servers[1].start()
            await _until(lambda: uplink.stats.observations_acked == 80, 20)
            assert uplink.stats.sessions >= 2
            assert await uplink.stop(timeout=5)
            assert not task.done()  # the uplink survived the outage
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await servers[-1].stop(grace=0.5)

    asyncio.run(scenario())
    assert _stored_starts(db) == sorted(o.start_unix_ns for o in produced)


def test_buffer_drops_oldest_and_counts() -> None:
    async def scenario() -> None:
        buffer = ObservationBuffer(100, batch_size=10)
        for i in range(130):
            buffer.put(_observation(i))
        assert buffer.dropped == 30
        kept = buffer.take(1000)
        assert [o.rtt_samples_ns[0] - 40_000 for o in kept] == list(range(30, 130))

    asyncio.run(scenario())


def test_observations_are_batched_by_size_and_by_flush_interval(tmp_path: Path) -> None:
    port = free_port()
    settings = CollectorSettings(
        listen=f"127.0.0.1:{port}", db_path=tmp_path / "c.db", metrics_port=free_port()
    )
    config = config_from_mapping({
        "agent_id": "batching",
        "collector": {"address": f"127.0.0.1:{port}", "insecure": True,
                      "flush_interval": 0.5, "batch_max": 100},
    })  # fmt: skip

    async def scenario() -> None:
        server = CollectorServer(settings)
        await server.start()
        buffer = ObservationBuffer(10_000, batch_size=100)
        uplink = Uplink(config, buffer, lambda: up.Heartbeat(sent_unix_ns=time.time_ns()))
        task = asyncio.create_task(uplink.run())
        try:
            await _until(lambda: uplink.stats.connected, 10)
            # A trickle is held until the flush interval, then goes as one batch.
            started = time.monotonic()
            for i in range(5):
                buffer.put(_observation(i))
                await asyncio.sleep(0.02)
            await _until(lambda: uplink.stats.observations_acked == 5, 5)
            assert uplink.stats.batches_sent == 1
            assert time.monotonic() - started >= 0.4
            # A burst goes out in full batches without waiting for the interval.
            started = time.monotonic()
            for i in range(5, 305):
                buffer.put(_observation(i))
            await _until(lambda: uplink.stats.observations_acked == 305, 5)
            assert uplink.stats.batches_sent == 4
            assert time.monotonic() - started < 0.4
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop(grace=0.5)

    asyncio.run(scenario())


def test_batches_stay_under_the_message_limit(tmp_path: Path) -> None:
    """200 rounds of 10,000 echoes each (~9 MB on the wire) used to be one batch the
    collector refused as too large, again and again; now they go in several."""
    port = free_port()
    settings = CollectorSettings(
        listen=f"127.0.0.1:{port}", db_path=tmp_path / "c.db", metrics_port=free_port()
    )
    config = config_from_mapping({
        "agent_id": "big-rounds",
        "collector": {"address": f"127.0.0.1:{port}", "insecure": True,
                      "flush_interval": 0.05, "batch_max": 500},
    })  # fmt: skip
    big = []
    for i in range(200):
        o = _observation(i)
        o.packets_sent = o.packets_received = 10_000
        o.rtt_samples_ns = [1_000_000_000 + k for k in range(10_000)]  # 5-byte varints
        big.append(o)

    async def scenario() -> None:
        server = CollectorServer(settings)
        await server.start()
        buffer = ObservationBuffer(10_000, batch_size=500)
        uplink = Uplink(config, buffer, lambda: up.Heartbeat(sent_unix_ns=time.time_ns()))
        task = asyncio.create_task(uplink.run())
        try:
            for o in big:
                buffer.put(o)
            await _until(lambda: uplink.stats.observations_acked == 200, 30)
            assert uplink.stats.batches_sent >= 3
            assert uplink.stats.sessions == 1  # never refused, never reconnected
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop(grace=0.5)

    asyncio.run(scenario())
    assert len(_stored_starts(tmp_path / "c.db")) == 200
