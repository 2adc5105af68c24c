"""The agent's reconnect backoff starts again after every good session: a collector
restarted again and again is reached within seconds each time, not ever later."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from collector.server import CollectorServer
from tests.integration.uplink_helpers import (
    agent_for,
    collector_on_loopback,
    observation,
    until,
    uplink,
)

RESTARTS = 5
OUTAGE = 0.5
# With the backoff back at 0.5 s after each session, an outage of 0.5 s is over by the
# second attempt (0.25-0.5 s, then 0.5-1 s more after the disconnect): about a second
# after the restart at worst. Without the reset every outage doubles it at least once,
# so the fifth restart waits 3.5 s or more (the backoff is 8 s by then).
RECONNECT_WITHIN = 3.0


def test_backoff_resets_after_a_good_session_so_each_restart_reconnects_quickly(
    tmp_path: Path,
) -> None:
    settings = collector_on_loopback(tmp_path)
    config = agent_for(settings, "restarted", flush_interval=0.05, batch_max=5)
    reconnects: list[float] = []

    async def scenario() -> None:
        link, buffer = uplink(config, batch_size=5)
        server = CollectorServer(settings)
        await server.start()
        task = asyncio.create_task(link.run())
        produced = 0
        try:
            await until(lambda: link.stats.connected, 10)
            for _ in range(RESTARTS):
                # A healthy session: batches go and are acked.
                for _ in range(5):
                    buffer.put(observation(produced))
                    produced += 1
                await until(lambda n=produced: link.stats.observations_acked == n, 10)
                sessions = link.stats.sessions
                await server.stop(grace=0.2)
                await asyncio.sleep(OUTAGE)
                server = CollectorServer(settings)
                await server.start()
                started = time.monotonic()
                await until(lambda n=sessions: link.stats.sessions > n, 40)
                reconnects.append(time.monotonic() - started)
            assert not task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop(grace=0.2)

    asyncio.run(scenario())
    assert len(reconnects) == RESTARTS
    assert max(reconnects) < RECONNECT_WITHIN, f"reconnected after {reconnects} s"
