"""examples/all-checks.yaml runs: the real agent, every check kind, real servers, a collector.

Everything listens on loopback inside one lab host, as the example expects;
the only change made to the example is the path of the CA file.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import needs
from tests.e2e.helpers import scrape, scrape_samples, start_agent, start_collector, tail, wait_for
from tests.lab.netlab import Lab
from tests.lab.pki import make_ca
from tests.lab.servers import start_dns, start_nginx, start_pop3, start_smtp

pytestmark = [pytest.mark.lab, pytest.mark.slow]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "all-checks.yaml"


def _with_ca(node: object, ca_file: str) -> object:
    if isinstance(node, dict):
        return {k: ca_file if k == "ca_file" else _with_ca(v, ca_file) for k, v in node.items()}
    if isinstance(node, list):
        return [_with_ca(item, ca_file) for item in node]
    return node


def _latest_outcomes(db: Path) -> dict[str, str]:
    if not db.exists():
        return {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            rows = conn.execute(
                "SELECT check_id, outcome || ' ' || error_class || ' ' || error_detail,"
                " max(start_ns) FROM observations GROUP BY check_id"
            ).fetchall()
        except sqlite3.OperationalError:
            return {}
    return {check: outcome for check, outcome, _ in rows}


def test_every_check_of_the_example_config_succeeds(lab: Lab, tmp_path: Path) -> None:
    needs("nginx", "pop3", "dns")
    node = lab.host("node")
    ca = make_ca(tmp_path / "pki")
    cert = ca.issue(tmp_path / "pki", "node", san_ips=["127.0.0.1"])
    local = {"address": "127.0.0.1"}
    start_nginx(node, tmp_path, cert, http_port=8080, https_port=8443, **local)
    start_smtp(node, tmp_path, cert, port=2525, smtps_port=None, **local)
    start_pop3(node, tmp_path, cert, port=1110, pop3s_port=None, **local)
    start_dns(node, tmp_path, port=5353, **local)
    db = tmp_path / "collector.db"
    metrics_url = start_collector(node, "127.0.0.1", db, tmp_path)
    config = _with_ca(yaml.safe_load(EXAMPLE.read_text()), str(ca.cert_path))
    assert isinstance(config, dict)
    start_agent(node, config, tmp_path)

    expected = {check["id"] for check in config["checks"]}

    def all_ok() -> bool:
        latest = _latest_outcomes(db)
        return set(latest) == expected and all(v.startswith("ok") for v in latest.values())

    try:
        wait_for("an ok round of every example check", all_ok, timeout=40)
    except AssertionError:
        raise AssertionError(
            f"latest outcomes: {_latest_outcomes(db)}\nagent log:\n{tail(tmp_path / 'agent.log')}"
        ) from None

    # The new kinds reach Grafana too.
    metrics = scrape(node, metrics_url)
    assert metrics[("slawatch_probe_http_status_code", "web")] == 200
    assert metrics[("slawatch_probe_tls_cert_expiry_timestamp_seconds", "web-tls")] > time.time()
    assert metrics[("slawatch_probe_tls_handshake_seconds", "mail-smtp")] > 0
    assert metrics[("slawatch_probe_success", "dns-www")] == 1
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        verdicts = {row[0] for row in conn.execute(
            "SELECT json_extract(detail_json, '$.egress_loss.verdict') FROM observations "
            "WHERE check_id = 'egress-loopback'")}  # fmt: skip
    assert verdicts == {"VERDICT_CLEAR"}  # loopback loses nothing: 0 of 400
    assert 0 < metrics[("slawatch_host_disk_used_ratio", "node")] < 1
    assert metrics[("slawatch_host_process_running", "node")] >= 1  # nginx
    findings = [v for n, labels, v in scrape_samples(node, metrics_url)
                if n == "slawatch_host_findings" and labels["check"] == "node"]  # fmt: skip
    assert findings == [0, 0, 0, 0, 0]  # one per kind, none found
