"""The per-check series budget on a real collector on loopback: agents stream over gRPC,
the test reads the real /metrics. One agent's flood of check ids leaves the others'
checks exported; the refused are stored, counted per agent and logged once."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
from prometheus_client.parser import text_string_to_metric_families

from collector.server import CollectorServer, CollectorSettings
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up
from slawatch.v1 import uplink_pb2_grpc as up_grpc
from tests.conftest import COLLECTOR_CMD, free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
TARGET = "198.18.0.9:443"


def scrape(metrics_port: int) -> Samples:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def checks_of(samples: Samples, agent: str) -> set[str]:
    return {
        dict(labels)["check"]
        for name, labels in samples
        if name == "slawatch_probe_packets_sent_total" and dict(labels)["agent"] == agent
    }


def tcp(check_id: str) -> pb.Observation:
    return pb.Observation(
        check_id=check_id, kind=pb.CHECK_KIND_TCP, target=TARGET,
        start_unix_ns=time.time_ns() - 10**9, duration_ns=10**6, outcome=pb.OUTCOME_OK,
        packets_sent=1, packets_received=1,
    )  # fmt: skip


class Agent:
    """One agent's uplink stream: hello, then batches, each awaited until acked."""

    def __init__(self, grpc_port: int, agent_id: str) -> None:
        self.agent_id = agent_id
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
        self.call = up_grpc.UplinkStub(self.channel).Stream()
        self.sequence = 0

    async def _send(self, message: up.AgentMessage) -> up.CollectorMessage:
        await self.call.write(message)
        reply = await asyncio.wait_for(self.call.read(), 30)
        assert isinstance(reply, up.CollectorMessage)
        return reply

    async def hello(self) -> None:
        hello = up.Hello(agent_id=self.agent_id, sequence_epoch=1, software_version="test")
        assert (await self._send(up.AgentMessage(hello=hello))).HasField("hello_ack")

    async def send(self, *observations: pb.Observation) -> None:
        self.sequence += 1
        message = up.AgentMessage(batch=up.ObservationBatch(sequence=self.sequence))
        message.batch.observations.extend(observations)
        ack = (await self._send(message)).batch_ack
        assert ack.status == up.BatchAck.STATUS_ACCEPTED, ack.reason

    async def close(self) -> None:
        await self.call.done_writing()
        await self.channel.close()


def stored_checks(db: Path, agent: str) -> int:
    with sqlite3.connect(db) as conn:
        query = "SELECT count(DISTINCT check_id) FROM observations WHERE agent_id = ?"
        count: int = conn.execute(query, (agent,)).fetchone()[0]
        return count


def test_a_flood_of_check_ids_from_one_agent_leaves_another_agents_new_check_exported(
    tmp_path: Path,
) -> None:
    """The incident, on the default limits: batches of new ids from one agent."""
    settings = CollectorSettings(
        listen="127.0.0.1:0", db_path=tmp_path / "c.db", metrics_port=free_port()
    )
    assert (settings.max_check_series_per_agent, settings.max_check_series) == (1_000, 5_000)

    async def main() -> None:
        server = CollectorServer(settings)
        await server.start()
        try:
            flood, other = Agent(server.grpc_port, "hv-flood"), Agent(server.grpc_port, "hv-b")
            await flood.hello()
            await other.hello()
            await other.send(tcp("b-old"))
            for n in range(6):
                await flood.send(*(tcp(f"gen-{n}-{i}") for i in range(1_000)))
            # Arrives after the flood: first come first served would refuse it.
            await other.send(tcp("b-new"), tcp("b-old"))
            samples = await asyncio.to_thread(scrape, settings.metrics_port)
            await flood.close()
            await other.close()
        finally:
            await server.stop(grace=1)
        assert checks_of(samples, "hv-b") == {"b-old", "b-new"}
        labels = {"agent": "hv-b", "kind": "tcp", "target": TARGET}
        assert value(samples, "slawatch_probe_packets_sent_total", check="b-new", **labels) == 1
        assert value(samples, "slawatch_probe_packets_sent_total", check="b-old", **labels) == 2
        assert checks_of(samples, "hv-flood") == {f"gen-0-{i}" for i in range(1_000)}
        limited = "slawatch_metrics_series_limited_total"
        assert value(samples, limited, agent="hv-flood", limit="per_agent") == 5_000
        # Connected, never refused: 0 (every agent has the series from its first stream).
        assert value(samples, limited, agent="hv-b", limit="per_agent") == 0
        assert value(samples, "slawatch_metrics_check_series", agent="hv-flood") == 1_000
        assert value(samples, "slawatch_metrics_check_series", agent="hv-b") == 2
        # Refused from /metrics, not from the store.
        assert stored_checks(settings.db_path, "hv-flood") == 6_000
        assert value(samples, "slawatch_ingest_observations_total") == 6_003

    asyncio.run(main())


def wait_for_metrics(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, process.communicate()
        try:
            scrape(port)
            return
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, "collector did not start"
            time.sleep(0.1)


def test_the_options_bound_each_agent_under_the_ceiling_and_log_once(tmp_path: Path) -> None:
    """`slawatch-collector run` with both options, as an operator starts it."""
    grpc_port, metrics_port = free_port(), free_port()
    command = [
        COLLECTOR_CMD, "run", "--insecure", "--db", str(tmp_path / "c.db"),
        "--listen", f"127.0.0.1:{grpc_port}", "--metrics-listen", f"127.0.0.1:{metrics_port}",
        "--max-check-series-per-agent", "20", "--max-check-series", "30", "--duration", "120",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        wait_for_metrics(process, metrics_port)

        async def stream() -> Samples:
            agents = [Agent(grpc_port, name) for name in ("hv-a", "hv-b", "hv-c")]
            for agent in agents:
                await agent.hello()
            a, b, c = agents
            for n in range(3):
                await a.send(*(tcp(f"a-{n}-{i}") for i in range(25)))
            await b.send(*(tcp(f"b-{i}") for i in range(15)))
            await b.send(*(tcp(f"b-{i}") for i in range(15)))
            await c.send(tcp("c-0"))
            await c.send(tcp("c-0"), tcp("c-1"))
            samples = await asyncio.to_thread(scrape, metrics_port)
            for agent in agents:
                await agent.close()
            return samples

        samples = asyncio.run(stream())
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    exported = {agent: len(checks_of(samples, agent)) for agent in ("hv-a", "hv-b", "hv-c")}
    assert exported == {"hv-a": 20, "hv-b": 10, "hv-c": 0}
    assert sum(exported.values()) == 30
    limited = "slawatch_metrics_series_limited_total"
    assert value(samples, limited, agent="hv-a", limit="per_agent") == 75 - 20
    assert value(samples, limited, agent="hv-a", limit="total") == 0
    assert value(samples, limited, agent="hv-b", limit="total") == 5 + 5
    assert value(samples, limited, agent="hv-c", limit="total") == 3
    assert value(samples, "slawatch_metrics_check_series_limit", limit="per_agent") == 20
    assert value(samples, "slawatch_metrics_check_series_limit", limit="total") == 30
    # Once per agent and limit, not per observation.
    warnings = [line for line in err.splitlines() if "stored, not exported" in line]
    assert len(warnings) == 3, err
    assert "agent hv-a has 20 checks exported" in warnings[0]
    assert "further checks of agent hv-b (first: b-10" in warnings[1]
    assert "further checks of agent hv-c (first: c-0" in warnings[2]
