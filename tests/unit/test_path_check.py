"""The path check's change detection and report (pure; the lab test runs it live)."""

from __future__ import annotations

from typing import Any

from agent.probes.path import changed, detail_of


def test_a_change_needs_evidence_from_both_traces() -> None:
    old = ["10.0.0.1", "10.0.1.1", "10.0.2.1"]
    assert not changed(None, old)  # the first trace is the baseline
    assert not changed(old, list(old))
    assert not changed(old, ["10.0.0.1", "", "10.0.2.1"])  # a silent hop is no evidence
    assert changed(old, ["10.0.0.1", "10.0.9.1", "10.0.2.1"])
    assert changed(old, ["10.0.0.1", "10.0.1.1", "10.0.3.1", "10.0.2.1"])  # longer
    assert changed(old, ["10.0.0.1", "10.0.2.1"])  # shorter


def _report(*addresses: str, **extra: Any) -> dict[str, Any]:
    hops = [
        {"ttl": i + 1, "address": a or None, "sent": 3, "received": 3 if a else 0,
         "loss_ci95": [0.0, 0.56] if a else [0.44, 1.0]}
        for i, a in enumerate(addresses)
    ]  # fmt: skip
    return {"hops": hops, "reached": True, **extra}


def test_the_detail_carries_hops_markers_and_the_old_path() -> None:
    report = _report("10.0.0.1", "", "10.0.2.1", border={"ttl": 1}, egress={"ttl": 2},
                     rate_limited_ttls=[2], path_loss={"start_ttl": 3})  # fmt: skip
    detail = detail_of(report, ["10.0.0.1", "10.0.5.1", "10.0.9.9"])
    assert [h.address for h in detail.hops] == ["10.0.0.1", "", "10.0.2.1"]
    assert [h.rate_limited for h in detail.hops] == [False, True, False]
    assert (detail.border_ttl, detail.egress_ttl, detail.path_loss_ttl) == (1, 2, 3)
    assert detail.changed
    assert list(detail.previous) == ["10.0.0.1", "10.0.5.1", "10.0.9.9"]
    unchanged = detail_of(report, ["10.0.0.1", "10.0.5.1", "10.0.2.1"])
    assert not unchanged.changed
    assert not unchanged.previous
