"""Series that alerts take increase() of exist at 0 before their first event, on a real
collector's /metrics: a counter series born at 1 shows no increase, so the first
rejection, refused reload or spool drop would go unnoticed."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from collector.ingest.validate import RULES
from collector.server import CollectorServer, CollectorSettings
from slawatch.v1 import uplink_pb2 as up
from tests.conftest import free_port
from tests.integration.test_ingest import (
    Client,
    batch,
    hello,
    key,
    metric_samples,
    observation,
    run,
)

EXAMPLE_INVENTORY = Path(__file__).resolve().parents[2] / "examples" / "inventory.yaml"


def test_every_batch_result_and_rejection_rule_has_a_series_before_any_batch(
    tmp_path: Path,
) -> None:
    async def scenario(server: CollectorServer) -> None:
        before = metric_samples(server)
        for result in ("accepted", "duplicate", "rejected"):
            assert before[key("slawatch_ingest_batches_total", result=result)] == 0, result
        rules = {
            dict(labels)["rule"]: v
            for (name, labels), v in before.items()
            if name == "slawatch_ingest_rejections_total"
        }
        assert rules == dict.fromkeys(RULES, 0.0)
        client = Client(server)
        await client.send(hello())
        bad = observation()
        bad.duration_ns = -1
        assert (await client.send(batch(1, bad))).batch_ack.status == up.BatchAck.STATUS_REJECTED
        after = metric_samples(server)
        # The first rejection is an increase of 1, on series that were there before.
        assert after[key("slawatch_ingest_batches_total", result="rejected")] == 1
        assert after[key("slawatch_ingest_rejections_total", rule="bad_duration")] == 1
        assert after[key("slawatch_ingest_rejections_total", rule="bad_time")] == 0
        await client.close()

    run(tmp_path, scenario)


def test_an_agents_drop_and_series_limit_counters_start_at_zero_when_it_connects(
    tmp_path: Path,
) -> None:
    async def scenario(server: CollectorServer) -> None:
        dropped = key("slawatch_agent_observations_dropped_total", agent="hv-new")
        limited = {
            limit: key("slawatch_metrics_series_limited_total", agent="hv-new", limit=limit)
            for limit in ("per_agent", "total")
        }
        before = metric_samples(server)
        assert dropped not in before
        client = Client(server)
        await client.send(hello("hv-new"))
        connected = metric_samples(server)
        assert connected[dropped] == 0
        assert {limit: connected[k] for limit, k in limited.items()} == {
            "per_agent": 0,
            "total": 0,
        }
        # A reconnect keeps what was counted (the series is not made anew).
        drop = up.SpoolDrop(
            reason=up.SpoolDrop.REASON_SIZE, first_sequence=1, last_sequence=1, batches=1,
            observations=7,
        )  # fmt: skip
        message = batch(2, observation())
        message.batch.spool_drops.append(drop)
        assert (await client.send(message)).batch_ack.status == up.BatchAck.STATUS_ACCEPTED
        await client.close()
        again = Client(server)
        await again.send(hello("hv-new"))
        assert metric_samples(server)[dropped] == 7
        await again.close()

    run(tmp_path, scenario)


def test_inventory_reload_results_have_series_before_the_first_reload(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    shutil.copy(EXAMPLE_INVENTORY, inventory)
    settings = CollectorSettings(
        listen="127.0.0.1:0", db_path=tmp_path / "c.db", metrics_port=free_port(),
        inventory=inventory, attribution_interval=3600,
    )  # fmt: skip

    def reloads(server: CollectorServer) -> dict[str, float]:
        samples = metric_samples(server)
        name = "slawatch_inventory_reloads_total"
        return {r: samples[key(name, result=r)] for r in ("ok", "invalid")}

    async def main() -> None:
        server = CollectorServer(settings)
        await server.start()
        try:
            assert reloads(server) == {"ok": 0, "invalid": 0}
            good = inventory.read_text()
            inventory.write_text("sites: [")
            server.reload_inventory()
            assert reloads(server) == {"ok": 0, "invalid": 1}
            inventory.write_text(good)
            server.reload_inventory()
            assert reloads(server) == {"ok": 1, "invalid": 1}
        finally:
            await server.stop(grace=1)

    asyncio.run(main())


def test_without_an_inventory_there_are_no_reload_series(tmp_path: Path) -> None:
    async def scenario(server: CollectorServer) -> None:
        names = {name for name, _labels in metric_samples(server)}
        assert "slawatch_inventory_reloads_total" not in names
        assert "slawatch_ingest_batches_total" in names

    run(tmp_path, scenario)
