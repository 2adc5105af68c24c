"""mTLS between agents and the collector: the certificate is the identity.

A real collector with `pki init` certificates and the agent's real uplink:
the right certificate streams; a certificate from another CA, a certificate
of another agent, and no certificate at all are refused, while the good agent
keeps streaming.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import grpc
import pytest

from agent.config import AgentConfig
from agent.errors import UplinkError
from collector import pki
from collector.server import CollectorServer, CollectorSettings
from slawatch.v1 import uplink_pb2 as up
from slawatch.v1 import uplink_pb2_grpc as up_grpc
from tests.integration.uplink_helpers import (
    agent_for,
    collector_on_loopback,
    observation,
    until,
    uplink,
)


def _agent(
    settings: CollectorSettings, agent_id: str, pki_dir: Path, cert_of: str | None = None
) -> AgentConfig:
    issued = pki.agent_paths(pki_dir, cert_of or agent_id)
    tls = {
        "ca_file": str(pki.ca_paths(pki_dir).cert_path),
        "cert_file": str(issued.cert_path),
        "key_file": str(issued.key_path),
    }
    spool_name = f"{agent_id}-{cert_of}-{pki_dir.name}"
    return agent_for(settings, agent_id, spool_name, flush_interval=0.05, tls=tls)


def test_identity_is_the_certificate(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "pki", tmp_path / "other-pki"
    pki.init(ours, ["127.0.0.1"])
    pki.init(theirs, ["127.0.0.1"])
    for agent_id in ("good", "mallory"):
        pki.issue_agent(ours, agent_id)
    pki.issue_agent(theirs, "good")
    settings = collector_on_loopback(tmp_path, tls_dir=ours)
    port = int(settings.listen.rsplit(":", 1)[1])
    db = settings.db_path

    async def scenario() -> None:
        server = CollectorServer(settings)
        await server.start()
        good, good_buffer = uplink(_agent(settings, "good", ours), batch_size=10)
        impostor, _ = uplink(_agent(settings, "good", ours, cert_of="mallory"), batch_size=10)
        stranger, _ = uplink(_agent(settings, "good", theirs), batch_size=10)
        tasks = [asyncio.create_task(u.run()) for u in (good, impostor, stranger)]
        try:
            good_buffer.put(observation(1))
            await until(lambda: good.stats.observations_acked == 1, 10)
            # mallory's certificate, claiming to be "good": refused for good.
            with pytest.raises(UplinkError, match=r"not for agent"):
                await asyncio.wait_for(tasks[1], 10)
            # A certificate from another CA never gets through the handshake.
            await asyncio.sleep(1.0)
            assert stranger.stats.sessions == 0
            # No client certificate at all: the handshake fails too.
            await _without_client_certificate(port, ours)
            # ... and the good agent was never disturbed.
            good_buffer.put(observation(2))
            await until(lambda: good.stats.observations_acked == 2, 10)
            assert good.stats.sessions == 1
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.stop(grace=0.5)

    asyncio.run(scenario())
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT DISTINCT agent_id FROM observations").fetchall() == [("good",)]


async def _without_client_certificate(port: int, pki_dir: Path) -> None:
    credentials = grpc.ssl_channel_credentials(pki.ca_paths(pki_dir).cert_path.read_bytes())
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        call = up_grpc.UplinkStub(channel).Stream()

        async def say_hello() -> None:
            await call.write(up.AgentMessage(hello=up.Hello(agent_id="good", sequence_epoch=1)))
            await asyncio.wait_for(call.read(), 5)

        with pytest.raises(grpc.aio.AioRpcError) as info:
            await say_hello()
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_pki_never_overwrites_and_keys_are_private(tmp_path: Path) -> None:
    from collector.errors import ConfigError

    pki.init(tmp_path, ["collector.lab.test"])
    with pytest.raises(ConfigError, match="never overwrites"):
        pki.init(tmp_path, ["collector.lab.test"])
    issued = pki.issue_agent(tmp_path, "node-1")
    with pytest.raises(ConfigError, match="never overwrites"):
        pki.issue_agent(tmp_path, "node-1")
    for key in (pki.ca_paths(tmp_path).key_path, issued.key_path):
        assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "agents").stat().st_mode & 0o777 == 0o700
