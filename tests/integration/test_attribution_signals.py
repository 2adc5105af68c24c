"""Signals as attribution reads them from a real store: batches written the way ingest
writes them, host findings and egress verdicts decoded from the stored detail, late
arrival from the batch's receive time."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

from collector.attribution.signals import load_signals
from collector.attribution.topology import topology_from_inventory
from collector.inventory import inventory_from_mapping
from collector.sla.model import MaintenanceScope, MaintenanceWindow, WindowSource
from collector.store.sqlite import Store
from collector.store.windows import add_window
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up

S = 10**9
T0 = 1_800_000_000 * S

INVENTORY = {
    "sites": [{"id": "s", "segments": [{"id": "g", "nodes": [
        {"id": "n", "address": "198.18.1.1", "agent": "a"},
    ]}]}],
    "services": [{"id": "web", "node": "n", "owner": "acme", "contract": "closte"}],
    "agents": {"a": {"checks": [{"id": "web", "kind": "http", "service": "web"}]}},
}  # fmt: skip


def _observations() -> list[pb.Observation]:
    host = pb.HostDetail()
    host.findings.add(kind=pb.Finding.KIND_DISK_FULL, subject="/srv", value=0.99, threshold=0.95)
    host.interfaces.add(name="eth0", rx_packets_per_second=1200.0)
    host.interfaces.add(name="eth1", rx_packets_per_second=34.0)
    egress = pb.EgressLossDetail(
        verdict=pb.EgressLossDetail.VERDICT_EXCESS, threshold_ratio=0.01,
        loss_lower_ratio=0.021, loss_upper_ratio=0.043,
        beyond=pb.HopLoss(address="198.18.0.9", sent=400, received=388,
                          loss_lower_ratio=0.017, loss_upper_ratio=0.05),
    )  # fmt: skip
    return [
        pb.Observation(check_id="web", kind=pb.CHECK_KIND_HTTP, target="http://n/",
                       start_unix_ns=T0 + i * 2 * S, duration_ns=S // 10,
                       outcome=pb.OUTCOME_OK if i < 2 else pb.OUTCOME_REFUSED,
                       error_class=pb.ERROR_CLASS_NONE if i < 2 else pb.ERROR_CLASS_CONNECT_REFUSED)
        for i in range(4)
    ] + [
        pb.Observation(check_id="host", kind=pb.CHECK_KIND_HOST, target="n",
                       start_unix_ns=T0, duration_ns=S // 100, outcome=pb.OUTCOME_FAILED,
                       error_class=pb.ERROR_CLASS_RESOURCE_EXHAUSTED, host=host),
        pb.Observation(check_id="egress", kind=pb.CHECK_KIND_EGRESS_LOSS, target="198.18.0.2",
                       start_unix_ns=T0, duration_ns=10 * S, outcome=pb.OUTCOME_FAILED,
                       egress_loss=egress),
    ]  # fmt: skip


def test_signals_read_back_what_ingest_stored(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = Store(db)
    batch = up.ObservationBatch(
        sequence=1,
        observations=_observations(),
        window_start_unix_ns=T0,
        window_end_unix_ns=T0 + 10 * S,
    )
    received = T0 + 600 * S  # ten minutes after: a backfill
    asyncio.run(store.write_batch("a", 1, batch, received))
    store.close()
    topology = topology_from_inventory(inventory_from_mapping(INVENTORY))
    with sqlite3.connect(db) as conn:
        signals = load_signals(conn, topology, T0, T0 + 60 * S)
    web = signals.checks[("a", "web")]
    assert [r.ok for r in web.rounds] == [True, True, False, False]
    assert web.rounds[-1].error_class == "connect_refused"
    assert web.interval_ns == 2 * S
    assert {r.received_ns for r in web.rounds} == {received}
    (host,) = signals.host["a"]
    assert host.findings == (("disk_full", "/srv"),)
    assert host.rx_packets_per_second == 1234.0
    (window,) = signals.egress["a"]
    assert (window.verdict, window.threshold, window.end_ns) == ("excess", 0.01, T0 + 10 * S)
    assert (window.beyond_lower, window.beyond_upper) == (0.017, 0.05)
    assert signals.coverage["a"] == ((T0, T0 + 10 * S),)


def test_a_node_window_reaches_the_items_on_the_node_and_on_its_vms(tmp_path: Path) -> None:
    data = {
        "sites": [{"id": "s", "segments": [{"id": "g", "nodes": [
            {"id": "hv", "address": "198.18.1.1", "agent": "a", "role": "hypervisor"},
            {"id": "vm", "address": "198.18.1.2", "role": "vm", "parent": "hv"},
            {"id": "other", "address": "198.18.1.3"},
        ]}]}],
        "services": [{"id": f"{n}-item", "node": n, "owner": "acme", "contract": "closte"}
                     for n in ("hv", "vm", "other")],
    }  # fmt: skip
    db = tmp_path / "c.db"
    Store(db).close()
    window = MaintenanceWindow(None, T0, T0 + 600 * S, T0 - 86_400 * S, note="new kernel",
                               scope=MaintenanceScope.NODE, scope_id="hv",
                               source=WindowSource.CLI)  # fmt: skip
    cancelled = dataclasses.replace(window, scope_id="other", cancelled_ns=T0)
    with sqlite3.connect(db) as conn:
        add_window(conn, window)
        add_window(conn, cancelled)
        topology = topology_from_inventory(inventory_from_mapping(data))
        signals = load_signals(conn, topology, T0, T0 + 60 * S)
    assert signals.maintenance == {
        "hv-item": ((T0, T0 + 600 * S, "new kernel"),),
        "vm-item": ((T0, T0 + 600 * S, "new kernel"),),
    }
