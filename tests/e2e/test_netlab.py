"""The lab itself: links route, faults apply and lift, teardown leaves nothing."""

from __future__ import annotations

import subprocess

from tests.conftest import AGENT_CMD
from tests.lab.netlab import NAME_PREFIX, Lab


def _ping_loss(lab: Lab, count: int = 200) -> float:
    import json

    agent, target = lab.hosts["agent"], lab.hosts["target"]
    out = agent.run(
        [
            AGENT_CMD,
            "probe",
            "icmp",
            target.address_toward(lab.hosts["r1"]),
            "--count",
            str(count),
            "--interval",
            "0.002",
            "--timeout",
            "0.5",
            "--json",
        ]
    )
    report = json.loads(out)
    return float(report["loss_ratio"])


def _two_hop(lab: Lab) -> None:
    agent, r1, target = lab.host("agent"), lab.router("r1"), lab.host("target")
    lab.attach(agent, r1)
    lab.attach(target, r1)


def test_two_hop_path_forwards_and_cut_restores(lab: Lab) -> None:
    _two_hop(lab)
    assert _ping_loss(lab) == 0.0
    lab.cut(lab.hosts["r1"], lab.hosts["target"])
    assert _ping_loss(lab, count=20) == 1.0
    lab.restore(lab.hosts["r1"], lab.hosts["target"])
    assert _ping_loss(lab) == 0.0


def test_every_nth_drop_is_exact(lab: Lab) -> None:
    _two_hop(lab)
    lab.set_every_nth_drop(lab.hosts["r1"], lab.hosts["target"], 10)
    assert abs(_ping_loss(lab, count=500) - 0.10) < 0.01


def test_close_removes_namespaces_and_processes() -> None:
    from tests.conftest import _lab_skip_reason

    reason = _lab_skip_reason()
    if reason is not None:
        import pytest

        pytest.skip(reason)
    lab = Lab()
    host = lab.host("solo")
    sleeper = host.spawn(["sleep", "60"])
    namespace = host.namespace
    lab.close()
    assert sleeper.poll() is not None
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert namespace not in listed
    assert not any(
        line.startswith(namespace) for line in listed.splitlines() if NAME_PREFIX in line
    )
