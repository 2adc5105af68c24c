"""The egress-loss check's series on a real collector: windows go through the gRPC
ingest, the test reads /metrics. Every verdict has a series, 1 on the last window's;
the Wilson bounds are the last window's."""

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

CHECK = {"agent": "agent-1", "check": "egress-a", "kind": "egress_loss", "target": "198.18.0.2"}
Verdict = pb.EgressLossDetail.Verdict


def window(index: int, verdict: Verdict, lower: float, upper: float) -> pb.Observation:
    o = pb.Observation(
        check_id="egress-a", kind=pb.CHECK_KIND_EGRESS_LOSS, target="198.18.0.2",
        start_unix_ns=time.time_ns() - 10**9 + index, duration_ns=10**6, outcome=pb.OUTCOME_OK,
        packets_sent=1000, packets_received=965,
    )  # fmt: skip
    o.egress_loss.verdict = verdict
    o.egress_loss.threshold_ratio = 0.01
    o.egress_loss.loss_lower_ratio, o.egress_loss.loss_upper_ratio = lower, upper
    return o


def verdicts(samples: dict[MetricKey, float]) -> dict[str, float]:
    return {
        dict(labels)["verdict"]: value
        for (name, labels), value in samples.items()
        if name == "slawatch_egress_loss_verdict" and dict(labels)["check"] == "egress-a"
    }


def test_the_last_windows_verdict_and_bounds_are_exported(tmp_path: Path) -> None:
    async def scenario(server: CollectorServer) -> None:
        client = Client(server)
        await client.send(hello())
        excess = window(0, pb.EgressLossDetail.VERDICT_EXCESS, 0.0251, 0.0484)
        ack = (await client.send(batch(1, excess))).batch_ack
        assert ack.status == up.BatchAck.STATUS_ACCEPTED, ack.reason
        samples = metric_samples(server)
        assert verdicts(samples) == {
            "clear": 0, "undecided": 0, "excess": 1, "rate_limited": 0
        }  # fmt: skip
        assert samples[key("slawatch_egress_loss_lower_ratio", **CHECK)] == 0.0251
        assert samples[key("slawatch_egress_loss_upper_ratio", **CHECK)] == 0.0484
        # The next windows: the 1 moves, the bounds follow, no series comes or goes.
        limited = window(1, pb.EgressLossDetail.VERDICT_RATE_LIMITED, 0.2, 0.3)
        clear = window(2, pb.EgressLossDetail.VERDICT_CLEAR, 0.0, 0.0038)
        ack = (await client.send(batch(2, limited, clear))).batch_ack
        assert ack.status == up.BatchAck.STATUS_ACCEPTED, ack.reason
        samples = metric_samples(server)
        assert verdicts(samples) == {
            "clear": 1, "undecided": 0, "excess": 0, "rate_limited": 0
        }  # fmt: skip
        assert samples[key("slawatch_egress_loss_lower_ratio", **CHECK)] == 0.0
        assert samples[key("slawatch_egress_loss_upper_ratio", **CHECK)] == 0.0038
        await client.close()

    run(tmp_path, scenario)


def test_a_window_without_a_verdict_leaves_every_verdict_at_zero(tmp_path: Path) -> None:
    """No verdict is not `clear`: nothing claims the window was fine."""

    async def scenario(server: CollectorServer) -> None:
        client = Client(server)
        await client.send(hello())
        excess = window(0, pb.EgressLossDetail.VERDICT_EXCESS, 0.02, 0.05)
        unspecified = window(1, pb.EgressLossDetail.VERDICT_UNSPECIFIED, 0.0, 0.3)
        ack = (await client.send(batch(1, excess, unspecified))).batch_ack
        assert ack.status == up.BatchAck.STATUS_ACCEPTED, ack.reason
        samples = metric_samples(server)
        assert verdicts(samples) == dict.fromkeys(
            ("clear", "undecided", "excess", "rate_limited"), 0
        )
        assert samples[key("slawatch_egress_loss_upper_ratio", **CHECK)] == 0.3
        await client.close()

    run(tmp_path, scenario)
