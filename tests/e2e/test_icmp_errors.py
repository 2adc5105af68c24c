"""ICMP errors from routers become the right outcome and error class."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.helpers import ping_report, two_hops
from tests.lab.netlab import Host, Lab

pytestmark = pytest.mark.lab


def _agent_behind_router(lab: Lab) -> tuple[Host, Host, Host]:
    agent, r1, target = two_hops(lab)
    # Linux rate-limits the ICMP errors a router sends (1/s per destination by
    # default); these tests count every error, so r1 must not hold any back.
    r1.run(["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"])
    return agent, r1, target


def test_no_route_on_the_router_is_net_unreachable(lab: Lab) -> None:
    agent, _r1, _target = _agent_behind_router(lab)
    # r1 has no route to 198.19.0.0/16, so it answers "network unreachable".
    report = ping_report(agent, "198.19.7.7", 3, interval=0.05)
    assert report["received"] == 0
    assert report["outcomes"] == {"unreachable_net": 3}, report


def test_router_rejecting_with_admin_prohibited(lab: Lab) -> None:
    agent, r1, target = _agent_behind_router(lab)
    script = (
        "add table inet guard\n"
        "add chain inet guard through { type filter hook forward priority 0; }\n"
        "add rule inet guard through icmp type echo-request"
        " reject with icmp type admin-prohibited\n"
    )
    subprocess.run(r1.exec_argv(["nft", "-f", "-"]), input=script, text=True, check=True,
                   timeout=10)  # fmt: skip
    report = ping_report(agent, target.address_toward(r1), 3, interval=0.05)
    assert report["outcomes"] == {"unreachable_prohibited": 3}, report


def test_ipv6_through_a_router_and_its_unreachable(lab: Lab) -> None:
    agent, r1, target = _agent_behind_router(lab)
    r1.run(["sysctl", "-qw", "net.ipv6.icmp.ratelimit=0"])
    report = ping_report(agent, target.address_toward(r1, v6=True), 50)
    assert report["received"] == 50, report
    # r1 has no route to this documentation prefix: ICMPv6 "no route to destination".
    unreachable = ping_report(agent, "2001:db8:dead::1", 3, interval=0.05)
    assert unreachable["outcomes"] == {"unreachable_net": 3}, unreachable
    lab.cut(r1, target)
    assert ping_report(agent, target.address_toward(r1, v6=True), 5, timeout=0.3)["outcomes"] == {
        "timeout": 5
    }
