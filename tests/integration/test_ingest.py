"""A real collector (gRPC server, SQLite store, /metrics) driven by a raw gRPC client."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from collector.errors import ConfigError
from collector.ingest.service import MAX_STREAMS_PER_AGENT
from collector.server import CollectorServer, CollectorSettings
from collector.store.coverage import coverage, last_config_status, spool_drops
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up
from slawatch.v1 import uplink_pb2_grpc as up_grpc
from tests.conftest import free_port


@asynccontextmanager
async def running_collector(tmp_path: Path) -> AsyncIterator[CollectorServer]:
    settings = CollectorSettings(
        listen="127.0.0.1:0", db_path=tmp_path / "c.db", metrics_port=free_port()
    )
    server = CollectorServer(settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=1)


def run(tmp_path: Path, scenario: Callable[[CollectorServer], Awaitable[None]]) -> None:
    async def main() -> None:
        async with running_collector(tmp_path) as server:
            await scenario(server)

    asyncio.run(main())


def observation(check_id: str = "icmp-a", sent: int = 10, received: int = 9) -> pb.Observation:
    o = pb.Observation(
        check_id=check_id, kind=pb.CHECK_KIND_ICMP, target="198.18.0.9",
        start_unix_ns=time.time_ns() - 10**9, duration_ns=10**6, outcome=pb.OUTCOME_OK,
        packets_sent=sent, packets_received=received,
    )  # fmt: skip
    samples = [50_001 + i for i in range(received)]
    o.rtt.samples_ns.extend(samples)
    o.rtt.min_ns, o.rtt.max_ns = min(samples), max(samples)
    o.rtt.mean_ns = sum(samples) // len(samples)
    return o


def hello(agent_id: str = "agent-1", epoch: int = 7) -> up.AgentMessage:
    return up.AgentMessage(
        hello=up.Hello(agent_id=agent_id, sequence_epoch=epoch, software_version="test")
    )


def batch(sequence: int, *observations: pb.Observation) -> up.AgentMessage:
    message = up.AgentMessage(batch=up.ObservationBatch(sequence=sequence))
    message.batch.observations.extend(observations)
    return message


class Client:
    """One uplink stream, written and read step by step."""

    def __init__(self, server: CollectorServer) -> None:
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        self.call = up_grpc.UplinkStub(self.channel).Stream()

    async def send(self, message: up.AgentMessage) -> up.CollectorMessage:
        await self.call.write(message)
        reply = await asyncio.wait_for(self.call.read(), 10)
        assert isinstance(reply, up.CollectorMessage)
        return reply

    async def close(self) -> None:
        await self.call.done_writing()
        await self.channel.close()


def stored_rows(db: Path) -> list[tuple[str, int, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT check_id, packets_sent, packets_received FROM observations ORDER BY id"
        ).fetchall()


MetricKey = tuple[str, tuple[tuple[str, str], ...]]


def key(name: str, **labels: str) -> MetricKey:
    return (name, tuple(sorted(labels.items())))


def metric_samples(server: CollectorServer) -> dict[MetricKey, float]:
    url = f"http://127.0.0.1:{server.settings.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {
        key(s.name, **s.labels): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_batch_is_stored_before_its_ack_and_exported(tmp_path: Path) -> None:
    db = tmp_path / "c.db"

    async def scenario(server: CollectorServer) -> None:
        client = Client(server)
        assert (await client.send(hello())).HasField("hello_ack")
        ack = (await client.send(batch(1, observation(), observation("icmp-b", 4, 4)))).batch_ack
        # The ack promises durability: a fresh connection sees the rows at once.
        assert ack.status == up.BatchAck.STATUS_ACCEPTED
        assert ack.sequence == 1
        assert stored_rows(db) == [("icmp-a", 10, 9), ("icmp-b", 4, 4)]
        samples = metric_samples(server)
        check = {"agent": "agent-1", "check": "icmp-a", "kind": "icmp", "target": "198.18.0.9"}
        assert samples[key("slawatch_probe_packets_sent_total", **check)] == 10
        assert samples[key("slawatch_probe_packets_received_total", **check)] == 9
        assert samples[key("slawatch_probe_rtt_seconds_count", **check)] == 9
        # Samples are 50.001-50.009 us: above the 50 us bucket, inside the 100 us one.
        assert samples[key("slawatch_probe_rtt_seconds_bucket", **check, le="5e-05")] == 0
        assert samples[key("slawatch_probe_rtt_seconds_bucket", **check, le="0.0001")] == 9
        assert samples[key("slawatch_probe_success", **check)] == 1
        assert samples[key("slawatch_agent_connected", agent="agent-1")] == 1
        assert samples[key("slawatch_ingest_batches_total", result="accepted")] == 1
        await client.close()

    run(tmp_path, scenario)


def test_resent_batch_is_stored_once(tmp_path: Path) -> None:
    db = tmp_path / "c.db"

    async def scenario(server: CollectorServer) -> None:
        first = Client(server)
        await first.send(hello(epoch=7))
        assert (
            await first.send(batch(1, observation()))
        ).batch_ack.status == up.BatchAck.STATUS_ACCEPTED
        await first.close()
        # Reconnect: the collector says what it already has, and a resend is a duplicate.
        second = Client(server)
        hello_ack = (await second.send(hello(epoch=7))).hello_ack
        assert hello_ack.last_stored_sequence == 1
        resent = (await second.send(batch(1, observation()))).batch_ack
        assert resent.status == up.BatchAck.STATUS_DUPLICATE
        # A new epoch (agent restarted) starts its own sequence space.
        await second.close()
        third = Client(server)
        await third.send(hello(epoch=8))
        assert (
            await third.send(batch(1, observation()))
        ).batch_ack.status == up.BatchAck.STATUS_ACCEPTED
        await third.close()

    run(tmp_path, scenario)
    assert len(stored_rows(db)) == 2


def test_rejected_batch_stores_nothing_and_the_stream_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "c.db"

    async def scenario(server: CollectorServer) -> None:
        client = Client(server)
        await client.send(hello())
        bad = observation("icmp-bad")
        bad.duration_ns = -1
        ack = (await client.send(batch(1, observation("icmp-good"), bad))).batch_ack
        assert ack.status == up.BatchAck.STATUS_REJECTED
        assert "observations[1].duration_ns" in ack.reason
        assert stored_rows(db) == []
        ack = (await client.send(batch(2, observation("icmp-good")))).batch_ack
        assert ack.status == up.BatchAck.STATUS_ACCEPTED
        samples = metric_samples(server)
        assert samples[key("slawatch_ingest_rejections_total", rule="bad_duration")] == 1
        await client.close()

    run(tmp_path, scenario)
    assert stored_rows(db) == [("icmp-good", 10, 9)]


async def _expect_abort(client: Client, message: up.AgentMessage) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.send(message)
    return info.value


@pytest.mark.parametrize(
    ("messages", "code", "fragment"),
    [
        ([batch(1, observation())], grpc.StatusCode.FAILED_PRECONDITION, "must be a hello"),
        ([hello(agent_id="no spaces allowed")], grpc.StatusCode.INVALID_ARGUMENT, "agent_id"),
        ([hello(), hello()], grpc.StatusCode.FAILED_PRECONDITION, "unexpected hello"),
        ([hello(), up.AgentMessage()], grpc.StatusCode.INVALID_ARGUMENT, "empty"),
    ],
)
def test_protocol_violations_abort_the_stream(
    tmp_path: Path, messages: list[up.AgentMessage], code: grpc.StatusCode, fragment: str
) -> None:
    async def scenario(server: CollectorServer) -> None:
        client = Client(server)
        for message in messages[:-1]:
            await client.send(message)
        error = await _expect_abort(client, messages[-1])
        assert error.code() == code
        assert fragment in (error.details() or "")
        await client.channel.close()

    run(tmp_path, scenario)


def test_oversized_message_is_refused_without_harming_other_agents(tmp_path: Path) -> None:
    async def scenario(server: CollectorServer) -> None:
        healthy = Client(server)
        await healthy.send(hello("healthy"))
        hostile = Client(server)
        await hostile.send(hello("hostile"))
        huge = observation()
        huge.error_detail = "x" * (5 << 20)
        error = await _expect_abort(hostile, batch(1, huge))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        ack = (await healthy.send(batch(1, observation()))).batch_ack
        assert ack.status == up.BatchAck.STATUS_ACCEPTED
        await healthy.close()
        await hostile.channel.close()

    run(tmp_path, scenario)


def test_health_service_reports_serving(tmp_path: Path) -> None:
    async def scenario(server: CollectorServer) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in ("", "slawatch.v1.Uplink"):
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
                assert reply.status == health_pb2.HealthCheckResponse.SERVING

    run(tmp_path, scenario)


def test_agent_stays_connected_while_any_of_its_streams_is_open(tmp_path: Path) -> None:
    async def scenario(server: CollectorServer) -> None:
        old, new = Client(server), Client(server)
        await old.send(hello("twin"))
        await new.send(hello("twin"))
        await old.close()  # the reconnect's old stream goes away ...
        await asyncio.sleep(0.2)
        gauge = key("slawatch_agent_connected", agent="twin")
        assert metric_samples(server)[gauge] == 1  # ... the agent is still connected
        await new.close()
        await asyncio.sleep(0.2)
        assert metric_samples(server)[gauge] == 0

    run(tmp_path, scenario)


def test_a_second_collector_cannot_share_the_port(tmp_path: Path) -> None:
    async def scenario(server: CollectorServer) -> None:
        twin = CollectorServer(CollectorSettings(
            listen=f"127.0.0.1:{server.grpc_port}", db_path=tmp_path / "twin.db",
            metrics_port=free_port()))  # fmt: skip
        with pytest.raises(ConfigError, match="cannot listen"):
            await twin.start()
        twin.store.close()

    run(tmp_path, scenario)


def test_streams_per_agent_are_bounded_without_harming_others(tmp_path: Path) -> None:
    async def scenario(server: CollectorServer) -> None:
        storm = [Client(server) for _ in range(MAX_STREAMS_PER_AGENT)]
        for client in storm:
            await client.send(hello("stormy"))
        extra = Client(server)
        error = await _expect_abort(extra, hello("stormy"))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "streams open already" in (error.details() or "")
        calm = Client(server)
        await calm.send(hello("calm"))
        assert (
            await calm.send(batch(1, observation()))
        ).batch_ack.status == up.BatchAck.STATUS_ACCEPTED
        await storm[0].close()  # a slot frees up when a stream ends
        await asyncio.sleep(0.2)
        again = Client(server)
        assert (await again.send(hello("stormy"))).HasField("hello_ack")
        for client in (*storm[1:], calm, again):
            await client.close()
        await extra.channel.close()

    run(tmp_path, scenario)


def test_a_stream_that_never_says_hello_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("collector.ingest.service.HELLO_TIMEOUT", 0.3)

    async def scenario(server: CollectorServer) -> None:
        silent = Client(server)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await asyncio.wait_for(silent.call.read(), 5)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await silent.channel.close()

    run(tmp_path, scenario)


SECOND = 10**9


def windowed(
    sequence: int, start: int, end: int, *drops: up.SpoolDrop, observed: bool = True
) -> up.AgentMessage:
    message = batch(sequence, observation()) if observed else batch(sequence)
    message.batch.window_start_unix_ns, message.batch.window_end_unix_ns = start, end
    message.batch.spool_drops.extend(drops)
    return message


def test_coverage_and_drop_reports_through_the_stream(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    t0 = time.time_ns() - 60 * SECOND
    age_drop = up.SpoolDrop(
        reason=up.SpoolDrop.REASON_AGE, dropped_unix_ns=t0 + 50 * SECOND, first_sequence=2,
        last_sequence=3, batches=2, observations=40, first_start_unix_ns=t0 + 10 * SECOND,
        last_start_unix_ns=t0 + 29 * SECOND, window_start_unix_ns=t0 + 10 * SECOND,
        window_end_unix_ns=t0 + 30 * SECOND,
    )  # fmt: skip

    async def scenario(server: CollectorServer) -> None:
        first = Client(server)
        await first.send(hello(epoch=7))
        # Batch 1, then (after a reconnect) 6 before 5 and a resent 1; 2..3 were dropped
        # for age (reported in 4, which carries nothing else), 4 bridges to 5.
        ack = (await first.send(windowed(1, t0, t0 + 10 * SECOND))).batch_ack
        assert ack.status == up.BatchAck.STATUS_ACCEPTED
        await first.close()
        second = Client(server)
        await second.send(hello(epoch=7))
        statuses = [
            (await second.send(message)).batch_ack.status
            for message in (
                windowed(6, t0 + 50 * SECOND, t0 + 60 * SECOND),
                windowed(1, t0, t0 + 10 * SECOND),
                windowed(5, t0 + 40 * SECOND, t0 + 50 * SECOND),
                windowed(4, t0 + 30 * SECOND, t0 + 40 * SECOND, age_drop, observed=False),
                windowed(4, t0 + 30 * SECOND, t0 + 40 * SECOND, age_drop, observed=False),
            )
        ]
        accepted, duplicate = up.BatchAck.STATUS_ACCEPTED, up.BatchAck.STATUS_DUPLICATE
        assert statuses == [accepted, duplicate, accepted, accepted, duplicate]
        samples = metric_samples(server)
        # Counted once although batch 4 came twice.
        assert samples[key("slawatch_agent_observations_dropped_total", agent="agent-1")] == 40
        assert samples[key("slawatch_agent_batches_dropped_total", agent="agent-1",
                           reason="age")] == 2  # fmt: skip
        await second.close()

    run(tmp_path, scenario)
    with sqlite3.connect(db) as conn:
        # Batches 2 and 3 are the one gap, and the drop report explains it.
        assert coverage(conn, "agent-1", 0, t0 + 3600 * SECOND) == [
            (t0, t0 + 10 * SECOND),
            (t0 + 30 * SECOND, t0 + 60 * SECOND),
        ]
        drops = spool_drops(conn, "agent-1")
        assert [(d.reason, d.first_sequence, d.last_sequence, d.reported_in_sequence,
                 d.window_start_ns, d.window_end_ns) for d in drops] == [
            ("age", 2, 3, 4, t0 + 10 * SECOND, t0 + 30 * SECOND)
        ]  # fmt: skip
        assert conn.execute("SELECT count(*) FROM observations").fetchone()[0] == 3


def test_a_bad_drop_report_rejects_the_batch_and_stores_nothing(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    now = time.time_ns()
    bad = up.SpoolDrop(reason=up.SpoolDrop.REASON_SIZE, first_sequence=1, last_sequence=2,
                       batches=2)  # fmt: skip

    async def scenario(server: CollectorServer) -> None:
        client = Client(server)
        await client.send(hello())
        ack = (await client.send(windowed(2, now - SECOND, now, bad))).batch_ack
        assert ack.status == up.BatchAck.STATUS_REJECTED
        assert "spool_drops[0].last_sequence: 2 is not below the batch's 2" in ack.reason
        samples = metric_samples(server)
        assert samples[key("slawatch_ingest_rejections_total", rule="bad_sequence")] == 1
        await client.close()

    run(tmp_path, scenario)
    with sqlite3.connect(db) as conn:
        for table in ("batches", "observations", "spool_drops", "coverage"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


def test_config_status_is_stored_and_exported_and_the_stream_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "c.db"

    async def scenario(server: CollectorServer) -> None:
        client = Client(server)
        await client.send(hello())
        for status in (
            up.ConfigStatus(version="v1", accepted=True),
            up.ConfigStatus(version="v2", accepted=False, reason="checks[0].interval: 0"),
        ):
            await client.call.write(up.AgentMessage(config_status=status))
        # A status gets no answer; the batch's ack shows the stream is still served.
        ack = (await client.send(batch(1, observation()))).batch_ack
        assert ack.status == up.BatchAck.STATUS_ACCEPTED
        samples = metric_samples(server)
        info = {k: v for k, v in samples.items() if k[0] == "slawatch_agent_config_info"}
        # One series per agent: the last answer replaced the first.
        assert info == {
            key("slawatch_agent_config_info", agent="agent-1", version="v2", accepted="false"): 1
        }
        error = await _expect_abort(
            client, up.AgentMessage(config_status=up.ConfigStatus(version="v" * 65))
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "config_status.version: 65 characters" in (error.details() or "")
        await client.channel.close()

    run(tmp_path, scenario)
    with sqlite3.connect(db) as conn:
        last = last_config_status(conn, "agent-1")
        assert last is not None
        assert (last.version, last.accepted, last.reason) == ("v2", False, "checks[0].interval: 0")
        assert conn.execute("SELECT count(*) FROM config_status").fetchone()[0] == 2


def test_a_hello_with_an_overlong_config_version_is_refused(tmp_path: Path) -> None:
    async def scenario(server: CollectorServer) -> None:
        client = Client(server)
        message = hello()
        message.hello.config_version = "v" * 65
        error = await _expect_abort(client, message)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "hello.config_version" in (error.details() or "")
        await client.channel.close()

    run(tmp_path, scenario)


def test_ack_latency_runs_from_a_batchs_arrival_to_its_queued_ack(tmp_path: Path) -> None:
    """A store that takes 0.3 s per batch: the accepted batch's latency includes it (so the
    clock starts before validation and stops after the commit); the rejected one never
    reaches the store; a heartbeat gets no ack and no latency."""

    async def scenario(server: CollectorServer) -> None:
        write_batch = server.store.write_batch

        async def slow_write(*args: object) -> object:
            await asyncio.sleep(0.3)
            return await write_batch(*args)  # type: ignore[arg-type]

        server.store.write_batch = slow_write  # type: ignore[method-assign]
        client = Client(server)
        await client.send(hello())
        ack = (await client.send(batch(1, observation()))).batch_ack
        assert ack.status == up.BatchAck.STATUS_ACCEPTED
        await client.call.write(up.AgentMessage(heartbeat=up.Heartbeat()))
        bad = observation()
        bad.duration_ns = -1
        ack = (await client.send(batch(2, bad))).batch_ack
        assert ack.status == up.BatchAck.STATUS_REJECTED
        samples = metric_samples(server)
        latency = "slawatch_ingest_ack_latency_seconds"
        assert samples[key(f"{latency}_count")] == 2
        assert samples[key(f"{latency}_bucket", le="0.25")] == 1  # the rejected one
        assert samples[key(f"{latency}_bucket", le="0.5")] == 2
        assert samples[key(f"{latency}_bucket", le="10.0")] == 2
        assert 0.3 <= samples[key(f"{latency}_sum")] < 0.5
        await client.close()

    run(tmp_path, scenario)
