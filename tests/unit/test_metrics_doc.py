"""docs/metrics.md lists exactly the metric families the collector exports."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest

from collector.attribution.model import IncidentKind, ItemState
from collector.attribution.runner import IncidentTotals, RunnerStats
from collector.exporters.metrics import CollectorMetrics
from collector.sla.model import Cause
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


class _Runner:
    """What the attribution exporter reads of the runner, after one run."""

    stats = RunnerStats(runs=1)
    states = {"web": ItemState.DOWN}
    totals = IncidentTotals(
        month_seconds={
            ("web", IncidentKind.OUTAGE, Cause.SERVICE): 60.0,
            ("web", IncidentKind.DEGRADED, Cause.NETWORK): 30.0,
        }
    )


def _exported_families(db: Path) -> set[str]:
    metrics = CollectorMetrics()
    metrics.watch_sla(db)
    metrics.watch_attribution(_Runner())
    metrics.agent_connected("a")
    metrics.heartbeat("a", up.Heartbeat(host=up.HostSnapshot(load1=1.0)))
    failed = pb.Observation(
        check_id="c",
        kind=pb.CHECK_KIND_TCP,
        target="t:1",
        outcome=pb.OUTCOME_REFUSED,
        packets_sent=1,
    )
    metrics.stored("a", [failed])
    metrics.rejections.labels("bad_time").inc()
    text = generate_latest(metrics.registry).decode()
    families = set(re.findall(r"^# TYPE (\S+) (\S+)", text, re.M))
    return {
        name + "_total" if kind == "counter" and not name.endswith("_total") else name
        for name, kind in families
    }


def test_every_exported_metric_is_documented_and_vice_versa(tmp_path: Path) -> None:
    documented = set(re.findall(r"^\| `(slawatch_[a-z0-9_]+)", DOC.read_text(), re.M))
    exported = _exported_families(tmp_path / "c.db")
    assert exported - documented == set(), "exported but not in docs/metrics.md"
    assert documented - exported == set(), "documented but not exported"
