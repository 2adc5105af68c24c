"""From an import file to a report and a claim, through the real CLI and store."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

from tests.conftest import COLLECTOR_CMD


def _line(**fields: object) -> str:
    return json.dumps(fields)


def _day_of_results(day: str, failing: range, cause: str) -> list[str]:
    """One web check's result every minute of ``day``; minutes in ``failing`` fail."""
    start = dt.datetime.fromisoformat(f"{day}T00:00:00+00:00")
    lines = []
    for minute in range(24 * 60):
        moment = (start + dt.timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
        fields: dict[str, object] = {"ok": minute not in failing}
        if minute in failing:
            fields["cause"] = cause
        lines.append(_line(type="observation", agent="probe", check="web", start=moment,
                           interval_s=60, **fields))  # fmt: skip
    return lines


def _collector(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COLLECTOR_CMD, *argv], capture_output=True, text=True, timeout=120)


def _store_with_a_network_hour(tmp_path: Path) -> Path:
    """Sonoran's own example: 1,000 USD a month, one hour of network downtime
    (failed tests 10:00 to 11:00 on 10 April: 60 minutes)."""
    lines = [
        _line(type="service_item", id="web-1", name="Shop front", policy="sonoran-web",
              monthly_fee="1000", currency="USD", checks=[{"agent": "probe", "check": "web"}]),
        *_day_of_results("2026-04-10", range(600, 661), "network"),
    ]  # fmt: skip
    source = tmp_path / "april.jsonl"
    source.write_text("\n".join(lines) + "\n")
    db = tmp_path / "c.db"
    done = _collector("import", str(source), "--db", str(db))
    assert done.returncode == 0, done.stderr
    return db


def test_report_and_claim_for_an_imported_month(tmp_path: Path) -> None:
    db = _store_with_a_network_hour(tmp_path)
    done = _collector("report", "--month", "2026-04", "--format", "json", "--db", str(db))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["schema"] == "slawatch.report/v1"
    (month,) = report["items"]
    assert month["credit"]["amount"] == "1.39"
    assert month["availability"] == 1.0  # network downtime is not part of server uptime
    assert month["downtime_by_cause"]["network"]["excluded_seconds"] == 3600
    assert month["unknown_seconds"] == 29 * 86_400  # only 10 April was measured
    (outage,) = month["outages"]
    assert (outage["start"], outage["end"]) == ("2026-04-10T10:00:00+00:00",
                                                "2026-04-10T11:00:00+00:00")  # fmt: skip
    assert not outage["counted"]
    assert outage["rule"].startswith("6.3")
    assert month["claim_deadline"] == "2026-04-13T11:00:00+00:00"

    claim = _collector("claim", "--service-item", "web-1", "--month", "2026-04", "--db", str(db))
    assert claim.returncode == 0, claim.stderr
    for expected in (
        "Service: Shop front (service item web-1)",
        "2026-04-10T10:00:00+00:00 to 2026-04-10T11:00:00+00:00 (UTC): 60.0 min credited, cause "
        "network",
        "Total affected duration: 60.0 min.",
        "Credit requested: 1.39 USD",
        "Claim deadline: 2026-04-13T11:00:00+00:00",
    ):
        assert expected in claim.stdout, claim.stdout

    csv_text = _collector("report", "--month", "2026-04", "--format", "csv", "--db", str(db))
    rows = csv_text.stdout.splitlines()
    assert len(rows) == 3  # header, the month, the outage
    assert rows[1].startswith("month,web-1,sonoran-web,2026-04,")
    markdown = _collector("report", "--month", "2026-04", "--db", str(db)).stdout
    assert "Credit **1.39 USD**" in markdown


def test_report_refuses_bad_requests_clearly(tmp_path: Path) -> None:
    db = _store_with_a_network_hour(tmp_path)
    bad_month = _collector("report", "--month", "2026-4", "--db", str(db))
    assert bad_month.returncode == 2
    assert "--month '2026-4': use YYYY-MM" in bad_month.stderr
    missing = _collector("claim", "--service-item", "nope", "--month", "2026-04", "--db", str(db))
    assert missing.returncode == 2
    assert "nope" in missing.stderr
    no_store = _collector("report", "--month", "2026-04", "--db", str(tmp_path / "none.db"))
    assert no_store.returncode == 2


def test_service_items_are_exported_for_grafana(tmp_path: Path) -> None:
    """On 20 April, the month so far: 1 day measured, 60 minutes of network downtime
    (excluded under sonoran-web, so availability 1.0 and the budget untouched), and
    the 1.39 USD credit it earns."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from collector.exporters.sla_metrics import SlaCollector

    db = _store_with_a_network_hour(tmp_path)
    registry = CollectorRegistry()
    april_20 = int(dt.datetime(2026, 4, 20, tzinfo=dt.UTC).timestamp()) * 10**9
    registry.register(SlaCollector(db, clock=lambda: april_20))
    samples = {
        (s.name, s.labels.get("cause", ""), s.labels.get("counted", "")): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
        if s.labels.get("service_item") == "web-1"
    }
    assert samples[("slawatch_sla_availability_ratio", "", "")] == 1.0
    assert samples[("slawatch_sla_error_budget_remaining_ratio", "", "")] == 1.0
    assert samples[("slawatch_sla_downtime_seconds", "network", "false")] == 3600
    assert samples[("slawatch_sla_downtime_seconds", "network", "true")] == 0
    assert samples[("slawatch_sla_credit", "", "")] == 1.39
    # 19 days so far, 10 April measured: 18 days without results.
    assert samples[("slawatch_sla_unknown_seconds", "", "")] == 18 * 86_400


def test_imported_packet_loss_shows_as_degraded_time(tmp_path: Path) -> None:
    """A Closte item whose loss check lost 5 of 100 echoes for 3 rounds (minutes):
    3 minutes of Excess Packet Loss, while its availability check stayed up."""
    lines = [
        _line(type="service_item", id="vm-1", policy="closte", monthly_fee="20",
              currency="EUR", checks=[{"agent": "probe", "check": "web"}],
              loss_checks=[{"agent": "probe", "check": "egress"}]),
        *(_line(type="observation", agent="probe", check="egress", kind="egress_loss",
                start=f"2026-04-10T10:0{m}:00Z", ok=True, interval_s=60,
                packets_sent=100, packets_received=95 if m < 3 else 100) for m in range(6)),
        *_day_of_results("2026-04-10", range(0), "network"),
    ]  # fmt: skip
    source = tmp_path / "loss.jsonl"
    source.write_text("\n".join(lines) + "\n")
    db = tmp_path / "c.db"
    assert _collector("import", str(source), "--db", str(db)).returncode == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_line(type="observation", agent="p", check="c", start="2026-04-10T10:00:00Z",
                         ok=True, packets_sent=1, packets_received=2) + "\n")  # fmt: skip
    refused = _collector("import", str(bad), "--db", str(db))
    assert refused.returncode == 2
    assert "line 1: packets_received: 2 is more than packets_sent (1)" in refused.stderr
    done = _collector("report", "--month", "2026-04", "--format", "json", "--db", str(db))
    (month,) = json.loads(done.stdout)["items"]
    assert month["degraded_seconds"] == 180
    assert month["degraded"] == [{"start": "2026-04-10T10:00:00+00:00",
                                  "end": "2026-04-10T10:03:00+00:00"}]  # fmt: skip
    assert month["availability"] == 1.0
