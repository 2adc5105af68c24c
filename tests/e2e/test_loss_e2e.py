"""End to end in the network lab: agent -> gRPC -> collector, with real injected loss.

collector --- r1 --- agent          the target is two hops from the agent,
              |                     behind r1; r1 drops 5% of what it
            target                  forwards to the target.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.binomial import acceptance_region
from tests.e2e.helpers import (
    outcomes,
    packet_sums,
    ping_report,
    probe_json,
    scrape,
    start_agent,
    start_collector,
    start_tcp_listener,
    tail,
    two_hops,
    wait_for,
)
from tests.lab.netlab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ICMP_CHECK = "icmp-target"
LOSS = 0.05


def _assert_loss_consistent(lost: int, sent: int, where: str) -> None:
    low, high = acceptance_region(sent, LOSS)
    assert low <= lost <= high, (
        f"{where}: {lost}/{sent} lost ({lost / sent:.3%}) is outside the 99.9% binomial "
        f"region [{low}, {high}] for {LOSS:.0%} loss"
    )


def test_agent_to_collector_measures_injected_loss(lab: Lab, tmp_path: Path) -> None:
    r1 = lab.router("r1")
    collector, agent, target = lab.host("collector"), lab.host("agent"), lab.host("target")
    for host in (collector, agent, target):
        lab.attach(host, r1)
    collector_ip, target_ip = collector.address_toward(r1), target.address_toward(r1)
    db = tmp_path / "collector.db"
    metrics_url = start_collector(collector, collector_ip, db, tmp_path)
    start_tcp_listener(target, 8080)
    lab.set_loss(r1, target, LOSS * 100)
    start_agent(agent, {
        "agent_id": "lab-agent",
        "collector": {"address": f"{collector_ip}:4317", "flush_interval": 0.5,
                      "insecure": True},
        "checks": [
            {"id": ICMP_CHECK, "kind": "icmp", "target": target_ip, "interval": 1.7,
             "packets": 250, "spacing": 0.004, "timeout": 0.5},
            {"id": "tcp-open", "kind": "tcp", "target": f"{target_ip}:8080", "interval": 1,
             "timeout": 0.5},
            {"id": "tcp-closed", "kind": "tcp", "target": f"{target_ip}:8081", "interval": 1,
             "timeout": 0.5},
        ],
    }, tmp_path)  # fmt: skip

    # Phase 1: 5% loss, at least 2,000 echoes stored.
    try:
        wait_for("2,000 stored echoes", lambda: packet_sums(db, ICMP_CHECK)[1] >= 2000, 90)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nagent log:\n{tail(tmp_path / 'agent.log')}\n"
            f"collector log:\n{tail(tmp_path / 'collector.log')}"
        ) from None
    _rounds, sent, received = packet_sums(db, ICMP_CHECK)
    _assert_loss_consistent(sent - received, sent, "store")
    metrics = scrape(collector, metrics_url)
    m_sent = int(metrics[("slawatch_probe_packets_sent_total", ICMP_CHECK)])
    m_received = int(metrics[("slawatch_probe_packets_received_total", ICMP_CHECK)])
    assert m_sent >= sent
    _assert_loss_consistent(m_sent - m_received, m_sent, "/metrics")
    assert metrics[("slawatch_agent_connected", "lab-agent")] == 1

    # Phase 2: loss removed; rounds that start afterwards lose nothing.
    lab.set_loss(r1, target, 0)
    cleared_ns = time.time_ns()
    wait_for(
        "a round after the loss was removed",
        lambda: packet_sums(db, ICMP_CHECK, cleared_ns)[0] >= 1,
        30,
    )
    before = scrape(collector, metrics_url)
    wait_for("1,000 more echoes", lambda: packet_sums(db, ICMP_CHECK, cleared_ns)[1] >= 1000, 60)
    _rounds, sent, received = packet_sums(db, ICMP_CHECK, cleared_ns)
    assert received == sent, f"{sent - received} of {sent} echoes lost without injected loss"
    after = scrape(collector, metrics_url)
    sent_delta = (
        after[("slawatch_probe_packets_sent_total", ICMP_CHECK)]
        - before[("slawatch_probe_packets_sent_total", ICMP_CHECK)]
    )
    received_delta = (
        after[("slawatch_probe_packets_received_total", ICMP_CHECK)]
        - before[("slawatch_probe_packets_received_total", ICMP_CHECK)]
    )
    assert sent_delta >= 250
    assert received_delta == sent_delta

    # TCP, once the path is clean: a listening port answers, a closed one refuses.
    # (Under the 5% loss some SYNs were dropped too: those rounds are timeouts.)
    assert outcomes(db, "tcp-open", cleared_ns) == {("ok", "none")}
    assert outcomes(db, "tcp-closed", cleared_ns) == {("refused", "connect_refused")}
    assert outcomes(db, "tcp-open") <= {("ok", "none"), ("timeout", "connect_timeout")}


def test_one_shot_probe_measures_two_percent_inside_its_interval(lab: Lab) -> None:
    agent, r1, target = two_hops(lab)
    # Exactly every 50th packet toward the target is dropped: 2% by construction,
    # so the check of the printed interval cannot be a coin toss.
    lab.set_every_nth_drop(r1, target, 50)
    report = ping_report(agent, target.address_toward(r1), 2000)
    low, high = report["loss_ci95"]
    assert report["sent"] == 2000
    assert low <= 0.02 <= high, report
    assert abs(report["loss_ratio"] - 0.02) <= 0.002, report
    assert set(report["rtt_ms"]) == {"min", "mean", "p50", "p99", "max"}
    assert 0 < report["rtt_ms"]["min"] <= report["rtt_ms"]["p50"] <= report["rtt_ms"]["max"]


def test_one_shot_probe_with_random_loss_stays_in_the_binomial_region(lab: Lab) -> None:
    agent, r1, target = two_hops(lab)
    lab.set_loss(r1, target, 2)
    report = ping_report(agent, target.address_toward(r1), 2000)
    low, high = acceptance_region(2000, 0.02)
    lost = report["sent"] - report["received"]
    assert low <= lost <= high, report


def test_one_shot_tcp_tells_open_from_refused_and_timeout(lab: Lab) -> None:
    agent, r1, target = two_hops(lab)
    target_ip = target.address_toward(r1)
    start_tcp_listener(target, 8080, seconds=60)

    def tcp(port: int, count: int, timeout: float = 2.0) -> dict[str, int]:
        report = probe_json(
            agent,
            [
                "probe",
                "tcp",
                f"{target_ip}:{port}",
                "--count",
                str(count),
                "--interval",
                "0.05",
                "--timeout",
                str(timeout),
            ],
        )
        outcomes: dict[str, int] = report["outcomes"]
        return outcomes

    wait_for("the listener", lambda: tcp(8080, 1) == {"ok": 1}, 10)
    assert tcp(8080, 3) == {"ok": 3}
    assert tcp(8081, 2) == {"refused": 2}
    lab.cut(r1, target)
    assert tcp(8080, 1, timeout=0.5) == {"timeout": 1}
