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


class _RawStream:
    """A stream that presents the given certificate files and says hello as ``agent_id``."""

    def __init__(self, port: int, pki_dir: Path, files: pki.Issued) -> None:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=pki.ca_paths(pki_dir).cert_path.read_bytes(),
            private_key=files.key_path.read_bytes(),
            certificate_chain=files.cert_path.read_bytes(),
        )
        self.channel = grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials)
        self.call = up_grpc.UplinkStub(self.channel).Stream()

    async def hello(self, agent_id: str) -> grpc.StatusCode:
        await self.call.write(up.AgentMessage(hello=up.Hello(agent_id=agent_id, sequence_epoch=1)))
        try:
            reply = await asyncio.wait_for(self.call.read(), 5)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        assert isinstance(reply, up.CollectorMessage)
        assert reply.HasField("hello_ack")
        return grpc.StatusCode.OK

    async def close(self) -> None:
        await self.channel.close()


def _not_after(files: pki.Issued) -> float:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(files.cert_path.read_bytes())
    return cert.not_valid_after_utc.timestamp()


def _expiry(server: CollectorServer, agent_id: str) -> float | None:
    return server.metrics.registry.get_sample_value(
        "slawatch_agent_certificate_expiry_timestamp_seconds", {"agent": agent_id}
    )


def test_the_certificate_expiry_is_of_the_agents_last_stream(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    pki.init(d, ["127.0.0.1"])
    first = pki.issue_agent(d, "hv-a", days=40)
    first_not_after = _not_after(first)  # the renewal below replaces the file
    other = pki.issue_agent(d, "hv-b", days=400)
    mallory = pki.issue_agent(d, "mallory", days=5)
    settings = collector_on_loopback(tmp_path, tls_dir=d)
    port = int(settings.listen.rsplit(":", 1)[1])

    async def scenario() -> None:
        server = CollectorServer(settings)
        await server.start()
        streams: list[_RawStream] = []

        async def connect(files: pki.Issued, agent_id: str) -> grpc.StatusCode:
            streams.append(_RawStream(port, d, files))
            return await streams[-1].hello(agent_id)

        try:
            assert await connect(first, "hv-a") == grpc.StatusCode.OK
            assert _expiry(server, "hv-a") == first_not_after
            assert _expiry(server, "hv-b") is None
            # mallory's certificate naming hv-b is refused: it sets no one's expiry.
            assert await connect(mallory, "hv-b") == grpc.StatusCode.PERMISSION_DENIED
            assert _expiry(server, "hv-b") is None
            assert _expiry(server, "mallory") is None
            assert await connect(other, "hv-b") == grpc.StatusCode.OK
            assert _expiry(server, "hv-b") == _not_after(other)
            # hv-a's certificate is renewed (the old one revoked as superseded) and the
            # agent reconnects with it: the expiry is the new certificate's.
            await streams[0].close()
            renewed = pki.ensure_agent(d, "hv-a", days=825, renew_within=60).issued
            assert _not_after(renewed) > first_not_after + 700 * 86400
            assert await connect(renewed, "hv-a") == grpc.StatusCode.OK
            assert _expiry(server, "hv-a") == _not_after(renewed)
            # Still exported once the stream ends: the last stream's certificate.
            for stream in streams:
                await stream.close()
            await asyncio.sleep(0.2)
            assert _expiry(server, "hv-a") == _not_after(renewed)
        finally:
            for stream in streams:
                await stream.close()
            await server.stop(grace=0.5)

    asyncio.run(scenario())


def test_without_mtls_there_is_no_certificate_expiry(tmp_path: Path) -> None:
    settings = collector_on_loopback(tmp_path)
    port = int(settings.listen.rsplit(":", 1)[1])

    async def scenario() -> None:
        server = CollectorServer(settings)
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        try:
            call = up_grpc.UplinkStub(channel).Stream()
            await call.write(up.AgentMessage(hello=up.Hello(agent_id="hv-a", sequence_epoch=1)))
            reply = await asyncio.wait_for(call.read(), 5)
            assert isinstance(reply, up.CollectorMessage)
            assert reply.HasField("hello_ack")
            connected = server.metrics.registry.get_sample_value(
                "slawatch_agent_connected", {"agent": "hv-a"}
            )
            assert connected == 1
            assert _expiry(server, "hv-a") is None
        finally:
            await channel.close()
            await server.stop(grace=0.5)

    asyncio.run(scenario())
