"""The path check in the daemon: a trace now and then, and a path-change event.

    agent --- r1 --- r2 --- target        r1 routes the target via r2, then,
               \\    /                     re-routed, via r3: the next trace
                r3                        reports the change, old and new hops.

The real agent (its trace runs as a child `slawatch-agent path`) streams to a
real collector on the agent host's loopback; the test reads the stored detail.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import start_agent, start_collector, tail, wait_for
from tests.lab.netlab import Lab

pytestmark = [pytest.mark.lab]


def _traces(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            rows = conn.execute(
                "SELECT detail_json FROM observations WHERE check_id = 'path-target' "
                "AND detail_json IS NOT NULL ORDER BY start_ns"
            ).fetchall()
        except sqlite3.OperationalError:
            return []
    return [json.loads(row[0])["path"] for row in rows]


def _hops(trace: dict[str, Any]) -> list[str]:
    return [hop.get("address", "") for hop in trace.get("hops", [])]


def test_a_re_route_is_reported_as_a_path_change(lab: Lab, tmp_path: Path) -> None:
    agent, r1, r2, r3, target = (lab.host("agent"), lab.router("r1"), lab.router("r2"),
                                 lab.router("r3"), lab.host("target"))  # fmt: skip
    near = lab.attach(agent, r1)
    lab.link(r1, r2)
    lab.link(r1, r3)
    lab.link(r3, r2)
    far = lab.attach(target, r2)
    lab.add_route(r1, str(far.network), via=r2)
    lab.add_route(r3, str(far.network), via=r2)
    lab.add_route(r2, str(near.network), via=r1)
    lab.add_route(r3, str(near.network), via=r1)
    for router in (r1, r2, r3):  # Linux limits ICMP errors to 1/s per source otherwise
        router.run(["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"])
    target_ip = target.address_toward(r2)
    db = tmp_path / "collector.db"
    start_collector(agent, "127.0.0.1", db, tmp_path)
    start_agent(agent, {
        "agent_id": "path-agent",
        "collector": {"address": "127.0.0.1:4317", "insecure": True, "flush_interval": 0.2},
        "checks": [{"id": "path-target", "kind": "path", "target": target_ip, "interval": 6,
                    "timeout": 4, "path": {"rounds": 2, "border": [r1.address_toward(agent)]}}],
    }, tmp_path)  # fmt: skip
    old = [r1.address_toward(agent), r2.address_toward(r1), target_ip]
    try:
        wait_for("a trace via r2", lambda: any(_hops(t) == old for t in _traces(db)), 40)
    except AssertionError:
        raise AssertionError(f"{_traces(db)}\n{tail(tmp_path / 'agent.log')}") from None
    first = next(t for t in _traces(db) if _hops(t) == old)
    assert first["reached"]
    assert first["border_ttl"] == 1
    assert first["egress_ttl"] == 2
    assert not first.get("changed", False)

    r1.run(["ip", "route", "replace", str(far.network), "via", r3.address_toward(r1)])
    # r2 answers from the address of its route back to the agent (its link to r1).
    new = [r1.address_toward(agent), r3.address_toward(r1), r2.address_toward(r1), target_ip]
    change = wait_for(
        "a path-change event",
        lambda: next((t for t in _traces(db) if t.get("changed")), None),
        40,
    )
    assert change["previous"] == old
    assert _hops(change) == new
