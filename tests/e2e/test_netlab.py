"""The lab itself: links route, faults apply and lift, teardown leaves nothing."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import _lab_skip_reason, skip_or_fail
from tests.e2e.helpers import ping_report, two_hops
from tests.lab.netlab import Lab

pytestmark = pytest.mark.lab


def test_two_hop_path_forwards_and_cut_restores(lab: Lab) -> None:
    agent, r1, target = two_hops(lab)
    target_ip = target.address_toward(r1)
    assert ping_report(agent, target_ip, 200)["loss_ratio"] == 0.0
    lab.cut(r1, target)
    assert ping_report(agent, target_ip, 20, timeout=0.3)["loss_ratio"] == 1.0
    lab.restore(r1, target)
    assert ping_report(agent, target_ip, 200)["loss_ratio"] == 0.0


def test_every_nth_drop_is_exact(lab: Lab) -> None:
    agent, r1, target = two_hops(lab)
    lab.set_every_nth_drop(r1, target, 10)
    report = ping_report(agent, target.address_toward(r1), 500)
    assert report["sent"] - report["received"] == 50


def test_close_removes_namespaces_and_processes() -> None:
    reason = _lab_skip_reason()
    if reason is not None:
        skip_or_fail(reason)
    lab = Lab()
    host = lab.host("solo")
    sleeper = host.spawn(["sleep", "60"])
    lab.close()
    assert sleeper.poll() is not None
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert host.namespace not in listed
