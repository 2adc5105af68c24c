"""`slawatch-agent path` in the network lab: hops in order, loss, rate limiting,
path changes and ECMP, on real routers (network namespaces).

    agent --- r1 --- r2 --- r3 --- r4 --- target

Linux routers limit the ICMP errors they send (1/s per destination by
default); these tests run many rounds a second, so every router here sends
them unlimited, except where a test limits them on purpose with nftables.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from typing import Any

import pytest

from tests.conftest import AGENT_CMD, skip_or_fail
from tests.e2e.helpers import probe_json, wait_for
from tests.lab.netlab import Host, Lab, LabError

pytestmark = pytest.mark.lab

FAST = ["--interval", "0.05", "--timeout", "0.5", "--numeric"]


def _unlimited_icmp(*hosts: Host) -> None:
    for host in hosts:
        host.run(["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"])


def _chain(lab: Lab, length: int = 4) -> tuple[Host, list[Host], Host]:
    """agent --- r1 --- ... --- rN --- target, routed both ways."""
    agent, target = lab.host("agent"), lab.host("target")
    routers = [lab.router(f"r{i}") for i in range(1, length + 1)]
    lab.attach(agent, routers[0])
    for left, right in itertools.pairwise(routers):
        lab.link(left, right)
    lab.attach(target, routers[-1])
    target_ip, agent_ip = target.address_toward(routers[-1]), agent.address_toward(routers[0])
    for i, router in enumerate(routers):
        if i < length - 1:
            lab.add_route(router, target_ip, routers[i + 1])
        if i > 0:
            lab.add_route(router, agent_ip, routers[i - 1])
    _unlimited_icmp(target, *routers)
    return agent, routers, target


def _port_unreachables_sent(host: Host) -> int:
    """The host's ICMP destination unreachables sent so far (its own namespace's count)."""
    lines = [line.split() for line in host.run(["cat", "/proc/net/snmp"]).splitlines()]
    names, values = [line for line in lines if line[0] == "Icmp:"][:2]
    return int(values[names.index("OutDestUnreachs")])


def _path(agent: Host, target_ip: str, *options: str) -> dict[str, Any]:
    return probe_json(agent, ["path", target_ip, *FAST, *options], timeout=30)


def _hop_addresses(report: dict[str, Any]) -> list[str | None]:
    return [hop["address"] for hop in report["hops"]]


@pytest.mark.parametrize("probe", ["icmp", "udp", "tcp"])
def test_trace_finds_every_hop_and_marks_border_and_egress(lab: Lab, probe: str) -> None:
    agent, (r1, r2, r3, r4), target = _chain(lab)
    target_ip = target.address_toward(r4)
    border = r2.address_toward(r1)  # r2 answers from the address toward the agent
    report = _path(agent, target_ip, "--probe", probe, "--count", "3", "--border", border)
    expected = [
        r1.address_toward(agent),
        r2.address_toward(r1),
        r3.address_toward(r2),
        r4.address_toward(r3),
        target_ip,
    ]
    assert _hop_addresses(report) == expected, report
    assert report["reached"]
    assert report["hops"][-1]["destination"]
    assert all(hop["received"] == hop["sent"] == 3 for hop in report["hops"]), report
    assert report["border"] == {"ttl": 2, "address": border}
    assert report["egress"] == {"ttl": 3, "address": r3.address_toward(r2)}
    assert [hop["markers"] for hop in report["hops"]] == [[], ["border"], ["egress"], [], []]
    assert report["path_changes"] == []


def test_provider_prefixes_give_border_and_egress(lab: Lab) -> None:
    agent, (r1, r2, r3, _r4), target = _chain(lab)
    # The provider's network: the agent's link and the r1-r2 link.
    prefixes = [str(lab.find_link(agent, r1)[0].network), str(lab.find_link(r1, r2)[0].network)]
    report = _path(
        agent, target.address_toward(_r4), "--probe", "udp", "--count", "2",
        *(arg for prefix in prefixes for arg in ("--provider-prefix", prefix)),
    )  # fmt: skip
    assert report["border"] == {"ttl": 2, "address": r2.address_toward(r1)}, report
    assert report["egress"] == {"ttl": 3, "address": r3.address_toward(r2)}
    assert report["border_basis"] == "provider prefix"


def test_loss_on_one_link_starts_at_the_next_hop_and_persists(lab: Lab) -> None:
    agent, (_r1, r2, r3, r4), target = _chain(lab)
    # Every 5th probe r2 forwards to r3 is dropped: the probes for TTL 3, 4
    # and 5 all cross that link, so each loses 20%, and r1, r2 lose none.
    lab.set_every_nth_drop(r2, r3, 5)
    report = _path(agent, target.address_toward(r4), "--probe", "udp", "--count", "60")
    hops = report["hops"]
    assert len(hops) == 5, report
    assert [hop["sent"] - hop["received"] for hop in hops[:2]] == [0, 0], hops
    for hop in hops[2:]:
        assert 0.1 <= hop["loss_ratio"] <= 0.3, hop
    assert report["path_loss"]["start_ttl"] == 3, report["path_loss"]
    assert [hop["verdict"] for hop in hops] == ["ok", "ok", "path_loss", "path_loss", "path_loss"]
    assert "path_loss_start" in hops[2]["markers"]
    assert report["rate_limited_ttls"] == []


def test_router_limiting_its_icmp_is_rate_limiting_not_loss(lab: Lab) -> None:
    agent, (_r1, r2, _r3, r4), target = _chain(lab)
    # The output hook sees only what r2 itself sends (its time-exceeded
    # errors), never what it forwards: the path itself stays lossless.
    script = "\n".join([
        "add table inet ratelimit",
        "add chain inet ratelimit out { type filter hook output priority 0; }",
        "add rule inet ratelimit out icmp type time-exceeded limit rate 2/second accept",
        "add rule inet ratelimit out icmp type time-exceeded counter drop",
    ])  # fmt: skip
    subprocess.run(r2.exec_argv(["nft", "-f", "-"]), input=script + "\n", text=True,
                   check=True, timeout=10)  # fmt: skip
    report = _path(agent, target.address_toward(r4), "--probe", "icmp", "--count", "40")
    hops = report["hops"]
    assert hops[1]["received"] < hops[1]["sent"] / 2, hops[1]
    assert all(hop["received"] == hop["sent"] for hop in hops[2:]), hops
    assert hops[0]["received"] == hops[0]["sent"]
    assert hops[1]["verdict"] == "rate_limited"
    assert "rate_limited" in hops[1]["markers"]
    assert report["rate_limited_ttls"] == [2]
    assert report["path_loss"] is None


def test_reroute_mid_run_is_a_path_change(lab: Lab) -> None:
    agent, (r1, r2, r3, r4), target = _chain(lab)
    # A second way from r1 to r3, through "alt".
    alt = lab.router("alt")
    lab.link(r1, alt)
    lab.link(alt, r3)
    target_ip = target.address_toward(r4)
    lab.add_route(alt, target_ip, r3)
    lab.add_route(alt, agent.address_toward(r1), r1)
    _unlimited_icmp(alt)
    argv = [AGENT_CMD, "path", target_ip, *FAST, "--probe", "udp", "--count", "60", "--json"]
    process = subprocess.Popen(agent.exec_argv(argv), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    lab.processes.append(process)
    # Re-route once a few rounds are done on the old path (the run takes 3 s).
    # Round 0 draws 26 port unreachables from the target (TTLs 5 to 30), each
    # later round one: 31 means five rounds, however slow the start was.
    wait_for("five rounds", lambda: _port_unreachables_sent(target) >= 31, timeout=20, every=0.05)
    r1.run(["ip", "route", "replace", target_ip, "via", alt.address_toward(r1)])
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()
    report = json.loads(out)
    old_path = [r1.address_toward(agent), r2.address_toward(r1), r3.address_toward(r2),
                r4.address_toward(r3), target_ip]  # fmt: skip
    new_path = [old_path[0], alt.address_toward(r1), *old_path[2:]]
    changes = report["path_changes"]
    assert len(changes) == 1, changes
    assert changes[0]["old"] == old_path
    assert changes[0]["new"] == new_path
    assert 0 < changes[0]["round"] < 60
    assert report["hops"][1]["addresses"].keys() == {old_path[1], new_path[1]}


def test_ecmp_each_trace_stays_on_one_path(lab: Lab) -> None:
    """Two parallel paths, flows spread by an L4 hash: every trace keeps to one.

    agent --- r1 ==(a | b)== r2 --- target
    """
    agent, r1, r2, target = lab.host("agent"), lab.router("r1"), lab.router("r2"), lab.host("t")
    a, b = lab.router("a"), lab.router("b")
    lab.attach(agent, r1)
    lab.attach(target, r2)
    for middle in (a, b):
        lab.link(r1, middle)
        lab.link(middle, r2)
    target_ip, agent_ip = target.address_toward(r2), agent.address_toward(r1)
    for middle in (a, b):
        lab.add_route(middle, target_ip, r2)
        lab.add_route(middle, agent_ip, r1)
    lab.add_route(r2, agent_ip, a)
    _unlimited_icmp(r1, r2, a, b, target)
    try:
        r1.run(["sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1"])
        r1.run(["ip", "route", "add", target_ip, "nexthop", "via", a.address_toward(r1),
                "nexthop", "via", b.address_toward(r1)])  # fmt: skip
    except LabError as exc:
        skip_or_fail(f"this kernel has no per-flow multipath routing: {exc}")
    middles = {a.address_toward(r1): "a", b.address_toward(r1): "b"}
    seen: dict[int, str] = {}
    for flow_id in range(41000, 41016):
        report = _path(agent, target_ip, "--probe", "udp", "--count", "4",
                       "--flow-id", str(flow_id))  # fmt: skip
        # Internally consistent: one address per hop over all rounds.
        assert all(len(hop["addresses"]) == 1 for hop in report["hops"]), report["hops"]
        assert len(report["hops"]) == 4, report
        assert report["path_changes"] == [], report
        seen[flow_id] = middles[report["hops"][1]["address"]]
        if len(set(seen.values())) == 2 and len(seen) >= 6:
            break
    if len(set(seen.values())) < 2:
        skip_or_fail(f"the kernel did not spread 16 UDP flows over both paths: {seen}")
