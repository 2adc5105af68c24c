"""Attribution's Prometheus series: what the exporter makes of a runner's state, and a
scrape of a real collector process attributing the example inventory."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collector.attribution.model import IncidentKind, ItemState
from collector.attribution.runner import IncidentTotals, RunnerStats
from collector.exporters.attribution_metrics import AttributionCollector
from collector.sla.model import Cause
from tests.conftest import COLLECTOR_CMD, free_port

EXAMPLE_INVENTORY = Path(__file__).resolve().parents[2] / "examples" / "inventory.yaml"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class _Runner:
    stats = RunnerStats(runs=5, failures=2, last_duration_s=0.25, last_success_unix=1e9,
                        changes={"new": 3, "revised": 1, "unchanged": 7})  # fmt: skip
    states = {"web": ItemState.DOWN, "mail": ItemState.UP}
    totals = IncidentTotals(
        month_seconds={
            ("web", IncidentKind.OUTAGE, Cause.SERVICE): 600.0,
            ("web", IncidentKind.OUTAGE, Cause.NETWORK): 60.0,
            ("mail", IncidentKind.DEGRADED, Cause.UPSTREAM): 30.0,
        },
        open_counts={(Cause.SERVICE, IncidentKind.OUTAGE): 1},
    )


def test_series_from_the_runner_state() -> None:
    registry = CollectorRegistry()
    registry.register(AttributionCollector(_Runner()))
    got = _samples(generate_latest(registry).decode())

    def state(item: str, name: str) -> float:
        return got[("slawatch_service_item_state", (("service_item", item), ("state", name)))]

    assert [state("web", s.value) for s in ItemState] == [0.0, 1.0, 0.0, 0.0]
    assert [state("mail", s.value) for s in ItemState] == [1.0, 0.0, 0.0, 0.0]
    down = "slawatch_service_item_downtime_seconds"
    assert got[(down, (("cause", "service"), ("service_item", "web")))] == 600.0
    assert got[(down, (("cause", "network"), ("service_item", "web")))] == 60.0
    degraded = "slawatch_service_item_degraded_seconds"
    assert got[(degraded, (("cause", "upstream"), ("service_item", "mail")))] == 30.0
    assert (down, (("cause", "upstream"), ("service_item", "mail"))) not in got
    open_now = {labels: v for (name, labels), v in got.items() if name == "slawatch_incidents_open"}
    assert len(open_now) == len(Cause) * len(IncidentKind)
    assert open_now[(("cause", "service"), ("kind", "outage"))] == 1.0
    assert sum(open_now.values()) == 1.0
    assert got[("slawatch_attribution_runs_total", ())] == 5.0
    assert got[("slawatch_attribution_run_failures_total", ())] == 2.0
    assert got[("slawatch_attribution_last_run_duration_seconds", ())] == 0.25
    assert got[("slawatch_attribution_last_success_timestamp_seconds", ())] == 1e9
    changes = "slawatch_attribution_incident_changes_total"
    assert got[(changes, (("change", "new"),))] == 3.0
    assert got[(changes, (("change", "withdrawn"),))] == 0.0
    assert (changes, (("change", "unchanged"),)) not in got


def test_a_running_collector_attributes_and_exports(tmp_path: Path) -> None:
    """No agent reports: every service item of the inventory is `unknown`, and the runs
    succeed every second."""
    metrics_port = free_port()
    collector = subprocess.Popen(
        [COLLECTOR_CMD, "--log-level", "warning", "run", "--insecure",
         "--listen", f"127.0.0.1:{free_port()}", "--metrics-listen", f"127.0.0.1:{metrics_port}",
         "--db", str(tmp_path / "c.db"), "--inventory", str(EXAMPLE_INVENTORY),
         "--attribution-interval", "1", "--duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    got: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.5)
            assert collector.poll() is None, collector.communicate()[1]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as page:
                    got = _samples(page.read().decode())
            except OSError:
                continue  # not listening yet
            if got.get(("slawatch_attribution_runs_total", ()), 0) >= 3:
                break
    finally:
        collector.terminate()
        _out, err = collector.communicate(timeout=30)
    assert got.get(("slawatch_attribution_runs_total", ()), 0) >= 3, err
    assert got[("slawatch_attribution_run_failures_total", ())] == 0.0, err
    assert got[("slawatch_attribution_last_success_timestamp_seconds", ())] > time.time() - 60
    items = {
        dict(labels)["service_item"]
        for (name, labels), value in got.items()
        if name == "slawatch_service_item_state" and dict(labels)["state"] == "unknown" and value
    }
    assert {"acme-web", "acme-mail", "hv-fra-02-node"} <= items
    assert not any(
        value
        for (name, labels), value in got.items()
        if name == "slawatch_service_item_state" and dict(labels)["state"] != "unknown"
    )
