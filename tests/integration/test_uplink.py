"""The agent's uplink against a real collector: acks, a collector restart, no duplicates."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from collector.server import CollectorServer
from tests.integration.uplink_helpers import (
    agent_for,
    collector_on_loopback,
    observation,
    stored_starts,
    until,
    uplink,
)


def test_uplink_resends_unacked_after_collector_restart(tmp_path: Path) -> None:
    settings = collector_on_loopback(tmp_path)
    db = settings.db_path
    config = agent_for(settings, "uplink-test", flush_interval=0.05, batch_max=7)
    produced = [observation(i) for i in range(80)]

    async def scenario() -> None:
        link, buffer = uplink(config, batch_size=7)
        servers = [CollectorServer(settings)]
        await servers[0].start()
        task = asyncio.create_task(link.run())
        try:
            for o in produced[:50]:
                buffer.put(o)
            await until(lambda: link.stats.observations_acked == 50, 10)
            await servers[0].stop(grace=0.5)
            # While the collector is down the agent keeps buffering and retrying.
            for o in produced[50:]:
                buffer.put(o)
            await asyncio.sleep(0.5)
            servers.append(CollectorServer(settings))
            await servers[1].start()
            await until(lambda: link.stats.observations_acked == 80, 20)
            assert link.stats.sessions >= 2
            assert await link.stop(timeout=5)
            assert not task.done()  # the uplink survived the outage
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await servers[-1].stop(grace=0.5)

    asyncio.run(scenario())
    assert stored_starts(db) == sorted(o.start_unix_ns for o in produced)


def test_observations_are_batched_by_size_and_by_flush_interval(tmp_path: Path) -> None:
    settings = collector_on_loopback(tmp_path)
    config = agent_for(settings, "batching", flush_interval=0.5, batch_max=100)

    async def scenario() -> None:
        server = CollectorServer(settings)
        await server.start()
        link, buffer = uplink(config, batch_size=100)
        task = asyncio.create_task(link.run())
        try:
            await until(lambda: link.stats.connected, 10)
            # A trickle is held until the flush interval, then goes as one batch.
            started = time.monotonic()
            for i in range(5):
                buffer.put(observation(i))
                await asyncio.sleep(0.02)
            await until(lambda: link.stats.observations_acked == 5, 5)
            assert link.stats.batches_sent == 1
            assert time.monotonic() - started >= 0.4
            # A burst goes out in full batches without waiting for the interval.
            started = time.monotonic()
            for i in range(5, 305):
                buffer.put(observation(i))
            await until(lambda: link.stats.observations_acked == 305, 5)
            assert link.stats.batches_sent == 4
            assert time.monotonic() - started < 0.4
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop(grace=0.5)

    asyncio.run(scenario())


def test_batches_stay_under_the_message_limit(tmp_path: Path) -> None:
    """200 rounds of 10,000 echoes each (~9 MB on the wire) used to be one batch the
    collector refused as too large, again and again; now they go in several."""
    settings = collector_on_loopback(tmp_path)
    config = agent_for(settings, "big-rounds", flush_interval=0.05, batch_max=500)
    big = []
    for i in range(200):
        o = observation(i)
        o.packets_sent = o.packets_received = 10_000
        o.rtt_samples_ns = [1_000_000_000 + k for k in range(10_000)]  # 5-byte varints
        big.append(o)

    async def scenario() -> None:
        server = CollectorServer(settings)
        await server.start()
        link, buffer = uplink(config, batch_size=500)
        task = asyncio.create_task(link.run())
        try:
            for o in big:
                buffer.put(o)
            await until(lambda: link.stats.observations_acked == 200, 30)
            assert link.stats.batches_sent >= 3
            assert link.stats.sessions == 1  # never refused, never reconnected
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop(grace=0.5)

    asyncio.run(scenario())
    assert len(stored_starts(tmp_path / "c.db")) == 200
