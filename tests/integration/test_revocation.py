"""Revoked and renewed agent certificates, against a real collector with mTLS on 127.0.0.1.

Certificates come from the real PKI code; revocations and renewals are made
with the real `slawatch-collector pki` command. Agents are the agent's real
uplink (and, once, the real `slawatch-agent run` process); a raw gRPC client
presents certificates that no agent uses any more.

* A revoked agent's open stream is ended (PERMISSION_DENIED, naming the
  revocation) within a few seconds, a new stream with its certificate is
  refused, another agent streams on undisturbed, and a fresh certificate for
  the re-added host is accepted.
* A renewal revokes the old certificate (superseded): refused; the new one
  is accepted.
* SIGHUP's reload reads the CRL at once; a CRL that does not parse is refused
  at start and, while running, changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

import grpc
import pytest
import yaml

from agent.config import AgentConfig
from agent.errors import UplinkError
from collector import pki
from collector.errors import ConfigError
from collector.ingest import revocation
from collector.server import CollectorServer, CollectorSettings
from slawatch.v1 import uplink_pb2 as up
from slawatch.v1 import uplink_pb2_grpc as up_grpc
from tests.conftest import AGENT_CMD, COLLECTOR_CMD
from tests.integration.uplink_helpers import (
    LinkedAgent,
    agent_for,
    collector_on_loopback,
    observation,
    until,
    uplink,
)

pytestmark = pytest.mark.timeout(120)

# "Within a few seconds": the CRL file is looked at every second.
ENDED_WITHIN = 5.0


def _serial(path: Path) -> str:
    from cryptography import x509

    return pki.serial_hex(x509.load_pem_x509_certificate(path.read_bytes()).serial_number)


def _agent(
    settings: CollectorSettings, agent_id: str, pki_dir: Path, spool: str, files: pki.Issued
) -> AgentConfig:
    tls = {
        "ca_file": str(pki.ca_paths(pki_dir).cert_path),
        "cert_file": str(files.cert_path),
        "key_file": str(files.key_path),
    }
    return agent_for(settings, agent_id, spool, flush_interval=0.05, tls=tls)


def _start(
    settings: CollectorSettings, agent_id: str, pki_dir: Path, spool: str
) -> tuple[LinkedAgent, asyncio.Task[None]]:
    """An agent's uplink with its current certificate, running."""
    files = pki.agent_paths(pki_dir, agent_id)
    linked, _ = uplink(_agent(settings, agent_id, pki_dir, spool, files), batch_size=10)
    return linked, asyncio.create_task(linked.run())


async def _acked(agent: LinkedAgent, count: int) -> None:
    agent.outbox.put(observation(count))
    await until(lambda: agent.stats.observations_acked == count, 10)


async def _both_acked(a: LinkedAgent, b: LinkedAgent) -> None:
    """Both agents streaming: each has its first observation acked."""
    await _acked(a, 1)
    await _acked(b, 1)


async def _pki_cli(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        COLLECTOR_CMD, "pki", *argv, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def _hello_with(
    settings: CollectorSettings, pki_dir: Path, files: pki.Issued, agent_id: str
) -> tuple[grpc.StatusCode, str]:
    """A raw client with these certificate files says hello: OK if acked, else the code."""
    port = int(settings.listen.rsplit(":", 1)[1])
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca_paths(pki_dir).cert_path.read_bytes(),
        private_key=files.key_path.read_bytes(),
        certificate_chain=files.cert_path.read_bytes(),
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        call = up_grpc.UplinkStub(channel).Stream()
        reply: object = None
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await call.write(up.AgentMessage(hello=up.Hello(agent_id=agent_id, sequence_epoch=1)))
            reply = await asyncio.wait_for(call.read(), 5)
        if isinstance(reply, up.CollectorMessage):
            call.cancel()
            return grpc.StatusCode.OK, "hello acked"
        code = await asyncio.wait_for(call.code(), 5)
        return code, await call.details()


def _aside(pki_dir: Path, where: str, agent_id: str, serial: str) -> pki.Issued:
    base = pki_dir / "agents" / where / f"{agent_id}-{serial}"
    return pki.Issued(base.with_name(base.name + ".crt"), base.with_name(base.name + ".key"))


def _revoked_count(server: CollectorServer) -> float:
    value = server.metrics.registry.get_sample_value(
        "slawatch_ingest_rejections_total", {"rule": "revoked"}
    )
    return value or 0.0


async def _stop(tasks: list[asyncio.Task[None]], server: CollectorServer) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await server.stop(grace=0.5)


def test_a_revoked_agent_is_refused_and_its_open_stream_ended(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    pki.init(d, ["127.0.0.1"])
    for agent_id in ("hv-a", "hv-b"):
        pki.issue_agent(d, agent_id)
    serial_a = _serial(pki.agent_paths(d, "hv-a").cert_path)
    settings = collector_on_loopback(tmp_path, tls_dir=d)

    async def scenario() -> None:
        server = CollectorServer(settings)
        await server.start()
        (a, task_a), (b, task_b) = (
            _start(settings, "hv-a", d, "a"),
            _start(settings, "hv-b", d, "b"),
        )
        tasks = [task_a, task_b]
        try:
            await _both_acked(a, b)
            out = await _pki_cli("revoke", "hv-a", "--dir", str(d))
            assert out.startswith(f"revoked hv-a serial {serial_a} ")
            revoked_at = time.monotonic()
            # The open stream is ended; the agent's uplink gives up for good.
            with pytest.raises(UplinkError) as info:
                await asyncio.wait_for(task_a, ENDED_WITHIN)
            assert time.monotonic() - revoked_at < ENDED_WITHIN
            message = str(info.value)
            assert "PERMISSION_DENIED" in message
            assert "revoked" in message
            assert serial_a in message
            assert "'hv-a'" in message
            # A new stream with that certificate is refused before its hello counts.
            code, details = await _hello_with(
                settings, d, _aside(d, "revoked", "hv-a", serial_a), "hv-a"
            )
            assert code == grpc.StatusCode.PERMISSION_DENIED
            assert "revoked" in details
            assert serial_a in details
            assert _revoked_count(server) == 2  # the ended stream and the refused one
            # The other agent was never disturbed.
            await _acked(b, 2)
            assert b.stats.sessions == 1
            assert not task_b.done()
            # The host is added again: a fresh certificate (new serial) is accepted.
            fresh = await _pki_cli("issue", "hv-a", "--dir", str(d))
            assert fresh.startswith("issued ")
            assert _serial(pki.agent_paths(d, "hv-a").cert_path) != serial_a
            a2, task_a2 = _start(settings, "hv-a", d, "a2")
            tasks.append(task_a2)
            await _acked(a2, 1)
            # ... and the old one stays refused.
            code, _ = await _hello_with(settings, d, _aside(d, "revoked", "hv-a", serial_a), "hv-a")
            assert code == grpc.StatusCode.PERMISSION_DENIED
        finally:
            await _stop(tasks, server)

    asyncio.run(scenario())
    with sqlite3.connect(settings.db_path) as conn:
        counts = dict(conn.execute("SELECT agent_id, COUNT(*) FROM observations GROUP BY agent_id"))
    assert counts == {"hv-a": 2, "hv-b": 2}


def test_a_renewed_agents_old_certificate_is_refused_and_the_new_one_accepted(
    tmp_path: Path,
) -> None:
    d = tmp_path / "pki"
    pki.init(d, ["127.0.0.1"])
    pki.ensure_agent(d, "hv-a", days=5)
    pki.issue_agent(d, "hv-b")
    old = _serial(pki.agent_paths(d, "hv-a").cert_path)
    settings = collector_on_loopback(tmp_path, tls_dir=d)

    async def scenario() -> None:
        server = CollectorServer(settings)
        await server.start()
        (a, task_a), (b, task_b) = (
            _start(settings, "hv-a", d, "a"),
            _start(settings, "hv-b", d, "b"),
        )
        tasks = [task_a, task_b]
        try:
            await _both_acked(a, b)
            kept = await _pki_cli("issue", "hv-a", "--dir", str(d), "--renew-within", "3")
            assert kept.startswith("unchanged ")
            out = await _pki_cli("issue", "hv-a", "--dir", str(d), "--renew-within", "10")
            assert out.startswith("renewed ")
            new = _serial(pki.agent_paths(d, "hv-a").cert_path)
            assert new != old
            with pytest.raises(UplinkError, match=r"revoked.*superseded"):
                await asyncio.wait_for(task_a, ENDED_WITHIN)
            code, details = await _hello_with(
                settings, d, _aside(d, "retired", "hv-a", old), "hv-a"
            )
            assert code == grpc.StatusCode.PERMISSION_DENIED
            assert old in details
            assert await _hello_with(settings, d, pki.agent_paths(d, "hv-a"), "hv-a") == (
                grpc.StatusCode.OK, "hello acked",
            )  # fmt: skip
            renewed, task_renewed = _start(settings, "hv-a", d, "a-renewed")
            tasks.append(task_renewed)
            await _acked(renewed, 1)
            await _acked(b, 2)
            assert b.stats.sessions == 1
        finally:
            await _stop(tasks, server)

    asyncio.run(scenario())


def test_sighup_reloads_the_crl_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(revocation, "WATCH_INTERVAL", 3600.0)  # only the reload can see it
    d = tmp_path / "pki"
    pki.init(d, ["127.0.0.1"])
    pki.issue_agent(d, "hv-a")
    settings = collector_on_loopback(tmp_path, tls_dir=d)

    async def scenario() -> None:
        server = CollectorServer(settings)
        await server.start()
        a, task_a = _start(settings, "hv-a", d, "a")
        try:
            await _acked(a, 1)
            pki.revoke_agent(d, "hv-a")
            await asyncio.sleep(1.5)
            assert not task_a.done()  # nothing looked at the file yet
            server.reload_inventory()  # what SIGHUP calls
            with pytest.raises(UplinkError, match="revoked"):
                await asyncio.wait_for(task_a, 2)
        finally:
            await _stop([task_a], server)

    asyncio.run(scenario())


def test_a_crl_that_does_not_parse_stops_the_start(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    pki.init(d, ["127.0.0.1"])
    pki.crl_path(d).write_text("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
    settings = collector_on_loopback(tmp_path, tls_dir=d)

    async def scenario() -> None:
        server = CollectorServer(settings)
        try:
            with pytest.raises(ConfigError, match=str(pki.crl_path(d))):
                await server.start()
        finally:
            server.store.close()

    asyncio.run(scenario())


def test_an_invalid_new_crl_changes_nothing_while_running(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    pki.init(d, ["127.0.0.1"])
    for agent_id in ("hv-a", "hv-b"):
        pki.issue_agent(d, agent_id)
    serial_a = _serial(pki.agent_paths(d, "hv-a").cert_path)
    pki.revoke_agent(d, "hv-a")
    settings = collector_on_loopback(tmp_path, tls_dir=d)

    async def scenario() -> None:
        server = CollectorServer(settings)
        await server.start()
        b, task_b = _start(settings, "hv-b", d, "b")
        try:
            await _acked(b, 1)
            broken = d / "crl.tmp"
            broken.write_text("not a CRL\n")
            broken.replace(pki.crl_path(d))
            await asyncio.sleep(2 * revocation.WATCH_INTERVAL + 0.5)
            code, _ = await _hello_with(settings, d, _aside(d, "revoked", "hv-a", serial_a),
                                        "hv-a")  # fmt: skip
            assert code == grpc.StatusCode.PERMISSION_DENIED
            await _acked(b, 2)
            assert b.stats.sessions == 1
        finally:
            await _stop([task_b], server)

    asyncio.run(scenario())


def test_the_agent_process_exits_with_status_2_when_revoked(tmp_path: Path) -> None:
    """The real `slawatch-agent run`: PERMISSION_DENIED is not retried, the agent exits."""
    d = tmp_path / "pki"
    pki.init(d, ["127.0.0.1"])
    files = pki.issue_agent(d, "hv-a")
    settings = collector_on_loopback(tmp_path, tls_dir=d)
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "agent_id": "hv-a",
        "collector": {
            "address": settings.listen, "flush_interval": 0.2,
            "tls": {"ca_file": str(pki.ca_paths(d).cert_path),
                    "cert_file": str(files.cert_path), "key_file": str(files.key_path)},
        },
        "spool": {"dir": str(tmp_path / "spool")},
        "checks": [{"id": "tcp-collector", "kind": "tcp", "target": settings.listen,
                    "interval": 1, "timeout": 0.5}],
    }))  # fmt: skip

    def stored() -> int:
        with contextlib.closing(sqlite3.connect(settings.db_path)) as conn:
            try:
                return int(conn.execute("SELECT COUNT(*) FROM observations").fetchone()[0])
            except sqlite3.OperationalError:
                return 0

    async def scenario() -> None:
        server = CollectorServer(settings)
        await server.start()
        agent = await asyncio.create_subprocess_exec(
            AGENT_CMD, "run", "--config", str(config), stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await until(lambda: stored() > 0 or agent.returncode is not None, 30)
            assert agent.returncode is None, "the agent did not start"
            await _pki_cli("revoke", "hv-a", "--dir", str(d))
            _, err = await asyncio.wait_for(agent.communicate(), ENDED_WITHIN + 5)
            assert agent.returncode == 2, err.decode()
            assert "revoked" in err.decode()
            assert "PERMISSION_DENIED" in err.decode()
        finally:
            if agent.returncode is None:
                agent.kill()
                await agent.wait()
            await server.stop(grace=0.5)

    asyncio.run(scenario())
