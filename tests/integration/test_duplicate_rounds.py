"""A batch that carries one round (check, start) twice is rejected and nothing of it is
stored; the same round in another batch, and a batch resent whole, are not that."""

from __future__ import annotations

from pathlib import Path

from collector.server import CollectorServer
from slawatch.v1 import uplink_pb2 as up
from tests.integration.test_ingest import (
    Client,
    batch,
    hello,
    key,
    metric_samples,
    observation,
    run,
    stored_rows,
)


def test_a_round_twice_in_one_batch_is_rejected_and_counted(tmp_path: Path) -> None:
    db = tmp_path / "c.db"

    async def scenario(server: CollectorServer) -> None:
        client = Client(server)
        await client.send(hello())
        first = observation("icmp-a")
        ack = (await client.send(batch(1, first, observation("icmp-b"), first))).batch_ack
        assert ack.status == up.BatchAck.STATUS_REJECTED
        assert ack.reason.startswith("duplicate_observation: observations[2].start_unix_ns: ")
        assert "repeats observations[0] of check 'icmp-a'" in ack.reason
        assert stored_rows(db) == []
        # The stream goes on; a batch resent whole is still answered by its sequence.
        ack = (await client.send(batch(2, first))).batch_ack
        assert ack.status == up.BatchAck.STATUS_ACCEPTED
        ack = (await client.send(batch(2, first))).batch_ack
        assert ack.status == up.BatchAck.STATUS_DUPLICATE
        samples = metric_samples(server)
        rejected = key("slawatch_ingest_rejections_total", rule="duplicate_observation")
        assert samples[rejected] == 1
        assert samples[key("slawatch_ingest_batches_total", result="rejected")] == 1
        assert samples[key("slawatch_ingest_batches_total", result="duplicate")] == 1
        await client.close()

    run(tmp_path, scenario)
    assert stored_rows(db) == [("icmp-a", 10, 9)]
