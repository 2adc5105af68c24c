"""The path check's series on a real collector: traces go through the gRPC ingest, the
test reads /metrics. Each hop's loss of the last trace, path changes counted, and a path
that keeps changing leaves only its last trace's hop series."""

from __future__ import annotations

import time
from pathlib import Path

from collector.server import CollectorServer
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up
from tests.integration.test_ingest import (
    Client,
    MetricKey,
    batch,
    hello,
    key,
    metric_samples,
    run,
)

TARGET = "198.18.0.9"
CHECK = {"agent": "agent-1", "check": "path-a", "kind": "path", "target": TARGET}
# (ttl, address, sent, received) of each hop.
Hop = tuple[int, str, int, int]


def trace(index: int, hops: list[Hop], changed: bool = False) -> pb.Observation:
    o = pb.Observation(
        check_id="path-a", kind=pb.CHECK_KIND_PATH, target=TARGET,
        start_unix_ns=time.time_ns() - 10**9 + index, duration_ns=10**6, outcome=pb.OUTCOME_OK,
    )  # fmt: skip
    o.path.changed = changed
    for ttl, address, sent, received in hops:
        o.path.hops.add(ttl=ttl, address=address, sent=sent, received=received)
    o.packets_sent, o.packets_received = hops[-1][2], hops[-1][3]
    return o


def hop_losses(samples: dict[MetricKey, float]) -> dict[tuple[str, str], float]:
    """(ttl, address) -> loss of path-a's exported hops."""
    found = {}
    for (name, labels), value in samples.items():
        named = dict(labels)
        if name == "slawatch_path_hop_loss_ratio" and named["check"] == "path-a":
            found[(named["ttl"], named["address"])] = value
    return found


FIRST: list[Hop] = [
    (1, "198.18.1.1", 10, 10),
    (2, "", 10, 0),  # never answered
    (3, "198.18.2.1", 0, 0),  # not probed in this trace
    (4, TARGET, 10, 7),
]


def test_each_hops_loss_of_the_last_trace_and_changes_are_exported(tmp_path: Path) -> None:
    changes = key("slawatch_path_changes_total", **CHECK)

    async def scenario(server: CollectorServer) -> None:
        client = Client(server)
        await client.send(hello())
        ack = (await client.send(batch(1, trace(0, FIRST)))).batch_ack
        assert ack.status == up.BatchAck.STATUS_ACCEPTED, ack.reason
        samples = metric_samples(server)
        assert hop_losses(samples) == {("1", "198.18.1.1"): 0.0, ("2", ""): 1.0, ("4", TARGET): 0.3}
        # The first trace changed nothing, and the counter is there at 0 for increase().
        assert samples[changes] == 0
        # The path moves at TTL 2 (and TTL 1 answers less): the old hops go, the new come.
        moved: list[Hop] = [
            (1, "198.18.1.1", 10, 8),
            (2, "198.18.1.2", 10, 10),
            (3, TARGET, 10, 10),
        ]
        ack = (await client.send(batch(2, trace(1, moved, changed=True)))).batch_ack
        assert ack.status == up.BatchAck.STATUS_ACCEPTED, ack.reason
        samples = metric_samples(server)
        assert hop_losses(samples) == {
            ("1", "198.18.1.1"): 0.2,
            ("2", "198.18.1.2"): 0.0,
            ("3", TARGET): 0.0,
        }
        assert samples[changes] == 1
        # Same path, TTL 2 silent this time: no change, yet its "" series replaces the
        # address series (label values, not the flag, decide what goes).
        quiet: list[Hop] = [(1, "198.18.1.1", 10, 10), (2, "", 10, 0), (3, TARGET, 10, 10)]
        await client.send(batch(3, trace(2, quiet)))
        samples = metric_samples(server)
        assert hop_losses(samples) == {("1", "198.18.1.1"): 0.0, ("2", ""): 1.0, ("3", TARGET): 0.0}
        assert samples[changes] == 1
        await client.close()

    run(tmp_path, scenario)


def flapping(index: int) -> pb.Observation:
    """Trace ``index`` of a path with a new address at TTL 2 every time."""
    hops = [(1, "198.18.1.1", 4, 4), (2, f"198.18.3.{index}", 4, 3), (3, TARGET, 4, 4)]
    return trace(index, hops, changed=index > 0)


def test_a_path_that_keeps_changing_keeps_one_traces_hop_series(tmp_path: Path) -> None:
    """A flapping route or per-flow load balancing: a new address at TTL 2 every trace."""

    async def scenario(server: CollectorServer) -> None:
        client = Client(server)
        await client.send(hello())
        for n in range(5):
            traces = [flapping(20 * n + i) for i in range(20)]
            ack = (await client.send(batch(n + 1, *traces))).batch_ack
            assert ack.status == up.BatchAck.STATUS_ACCEPTED, ack.reason
        samples = metric_samples(server)
        assert hop_losses(samples) == {
            ("1", "198.18.1.1"): 0.0,
            ("2", "198.18.3.99"): 0.25,
            ("3", TARGET): 0.0,
        }
        assert samples[key("slawatch_path_changes_total", **CHECK)] == 99
        await client.close()

    run(tmp_path, scenario)


def test_a_hop_with_more_answers_than_probes_rejects_the_batch(tmp_path: Path) -> None:
    async def scenario(server: CollectorServer) -> None:
        client = Client(server)
        await client.send(hello())
        bad = trace(0, [(1, "198.18.1.1", 3, 4), (2, TARGET, 3, 3)])
        ack = (await client.send(batch(1, bad))).batch_ack
        assert ack.status == up.BatchAck.STATUS_REJECTED
        assert "observations[0].path.hops[0]: received 4 of sent 3" in ack.reason
        samples = metric_samples(server)
        assert hop_losses(samples) == {}
        assert samples[key("slawatch_ingest_rejections_total", rule="bad_packets")] == 1
        await client.close()

    run(tmp_path, scenario)
