"""The per-check series budget: per agent under a collector-wide ceiling, refusals
counted per agent and limit, logged once per agent. Read from the real registry."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collector.exporters.metrics import CollectorMetrics
from slawatch.v1 import observation_pb2 as pb

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(metrics: CollectorMetrics) -> Samples:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def tcp(check_id: str) -> pb.Observation:
    return pb.Observation(
        check_id=check_id, kind=pb.CHECK_KIND_TCP, target="198.18.0.9:443",
        start_unix_ns=1, outcome=pb.OUTCOME_OK, packets_sent=1, packets_received=1,
    )  # fmt: skip


def exported(samples: Samples, agent: str, check: str) -> bool:
    labels = {"agent": agent, "check": check, "kind": "tcp", "target": "198.18.0.9:443"}
    return value(samples, "slawatch_probe_packets_sent_total", **labels) is not None


def checks_of(samples: Samples, agent: str) -> set[str]:
    return {
        dict(labels)["check"]
        for name, labels in samples
        if name == "slawatch_probe_packets_sent_total" and dict(labels)["agent"] == agent
    }


def test_a_flood_from_one_agent_leaves_the_others_their_budget() -> None:
    metrics = CollectorMetrics(max_check_series=100, max_check_series_per_agent=10)
    metrics.stored("b", [tcp("b-old")])
    # The incident: batch after batch of new ids from one agent.
    for n in range(10):
        metrics.stored("a", [tcp(f"a-{n}-{i}") for i in range(500)])
    metrics.stored("b", [tcp("b-new"), tcp("b-old")])
    samples = scrape(metrics)
    assert len(checks_of(samples, "a")) == 10
    # Its first ten, in arrival order; the rest are refused.
    assert checks_of(samples, "a") == {f"a-0-{i}" for i in range(10)}
    assert exported(samples, "b", "b-new")
    assert value(samples, "slawatch_probe_packets_sent_total", agent="b", check="b-old",
                 kind="tcp", target="198.18.0.9:443") == 2  # fmt: skip
    limited = "slawatch_metrics_series_limited_total"
    assert value(samples, limited, agent="a", limit="per_agent") == 5_000 - 10
    assert value(samples, limited, agent="b", limit="per_agent") is None
    assert value(samples, limited, agent="a", limit="total") is None
    assert value(samples, "slawatch_metrics_check_series", agent="a") == 10
    assert value(samples, "slawatch_metrics_check_series", agent="b") == 2
    assert value(samples, "slawatch_metrics_check_series_limit", limit="per_agent") == 10
    assert value(samples, "slawatch_metrics_check_series_limit", limit="total") == 100
    # Every observation stored is still counted as stored.
    assert value(samples, "slawatch_ingest_observations_total") == 5_003


def test_a_check_already_exported_keeps_being_updated_when_the_budget_is_full() -> None:
    metrics = CollectorMetrics(max_check_series=100, max_check_series_per_agent=2)
    metrics.stored("a", [tcp("x"), tcp("y"), tcp("z")])
    metrics.stored("a", [tcp("x"), tcp("z")])
    samples = scrape(metrics)
    assert checks_of(samples, "a") == {"x", "y"}
    assert value(samples, "slawatch_probe_rounds_total", agent="a", check="x", kind="tcp",
                 target="198.18.0.9:443", outcome="ok") == 2  # fmt: skip
    assert value(samples, "slawatch_metrics_series_limited_total", agent="a",
                 limit="per_agent") == 2  # fmt: skip


def test_the_ceiling_holds_over_all_agents() -> None:
    metrics = CollectorMetrics(max_check_series=25, max_check_series_per_agent=10)
    for agent in ("a", "b", "c", "d"):
        metrics.stored(agent, [tcp(f"{agent}-{i}") for i in range(12)])
    samples = scrape(metrics)
    assert {agent: len(checks_of(samples, agent)) for agent in "abcd"} == {
        "a": 10, "b": 10, "c": 5, "d": 0,
    }  # fmt: skip
    assert value(samples, "slawatch_metrics_check_series", agent="d") is None
    limited = "slawatch_metrics_series_limited_total"
    assert value(samples, limited, agent="a", limit="per_agent") == 2
    assert value(samples, limited, agent="b", limit="per_agent") == 2
    assert value(samples, limited, agent="c", limit="total") == 7
    assert value(samples, limited, agent="c", limit="per_agent") is None
    assert value(samples, limited, agent="d", limit="total") == 12
    # An agent over its own bound is told so, even with the collector full as well.
    metrics.stored("a", [tcp("a-late")])
    assert value(scrape(metrics), limited, agent="a", limit="per_agent") == 3
    assert value(scrape(metrics), limited, agent="a", limit="total") is None


def test_each_agent_is_logged_once_per_limit(caplog: pytest.LogCaptureFixture) -> None:
    metrics = CollectorMetrics(max_check_series=12, max_check_series_per_agent=10)
    with caplog.at_level(logging.WARNING, logger="collector.exporters.metrics"):
        for n in range(5):
            metrics.stored("a", [tcp(f"a-{n}-{i}") for i in range(100)])
            metrics.stored("b", [tcp(f"b-{n}-{i}") for i in range(3)])
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "agent a has 10 checks exported" in messages[0]
    assert "a-0-10" in messages[0]
    assert "--max-check-series-per-agent" in messages[0]
    assert "further checks of agent b" in messages[1]
    assert "--max-check-series)" in messages[1]


def test_a_per_agent_bound_at_the_ceiling_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="collector.exporters.metrics"):
        CollectorMetrics(max_check_series=500)
    assert "one agent can take every exported check series" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="collector.exporters.metrics"):
        CollectorMetrics()
    assert caplog.text == ""


def test_a_refused_path_or_egress_loss_check_gets_none_of_their_series() -> None:
    metrics = CollectorMetrics(max_check_series=10, max_check_series_per_agent=2)
    observations = []
    for n, kind in enumerate((pb.CHECK_KIND_PATH, pb.CHECK_KIND_EGRESS_LOSS) * 2):
        o = pb.Observation(
            check_id=f"c-{n}", kind=kind, target="198.18.0.2", start_unix_ns=1,
            outcome=pb.OUTCOME_OK, packets_sent=4, packets_received=4,
        )  # fmt: skip
        if kind == pb.CHECK_KIND_PATH:
            o.path.hops.add(ttl=1, address="198.18.0.2", sent=4, received=4)
        else:
            o.egress_loss.verdict = pb.EgressLossDetail.VERDICT_CLEAR
        observations.append(o)
    metrics.stored("a", observations)
    samples = scrape(metrics)
    family_checks = {
        name: {dict(labels)["check"] for n, labels in samples if n == name}
        for name in (
            "slawatch_path_hop_loss_ratio",
            "slawatch_path_changes_total",
            "slawatch_egress_loss_verdict",
            "slawatch_egress_loss_upper_ratio",
            "slawatch_egress_loss_lower_ratio",
        )
    }
    # The agent's first two checks are admitted, c-2 and c-3 are over its budget.
    assert family_checks == {
        "slawatch_path_hop_loss_ratio": {"c-0"},
        "slawatch_path_changes_total": {"c-0"},
        "slawatch_egress_loss_verdict": {"c-1"},
        "slawatch_egress_loss_upper_ratio": {"c-1"},
        "slawatch_egress_loss_lower_ratio": {"c-1"},
    }
    assert value(samples, "slawatch_metrics_series_limited_total", agent="a",
                 limit="per_agent") == 2  # fmt: skip
