"""Configuration from the collector, in the lab with real processes.

    agent --- r1 --- collector (`run --inventory inventory.yaml`)

The agent has one local check; the inventory gives it more. A change to the
inventory file reaches the agent and takes effect within one check interval;
a check list the agent refuses is reported back, and what ran before keeps
running; an inventory the collector refuses changes nothing; and after a
restart without a collector the agent probes with its cached list.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import AGENT_CMD
from tests.e2e.helpers import run_collector, scrape_samples, tail, wait_for
from tests.lab.netlab import Host, Lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NEW_CHECK_INTERVAL = 2.0
# The collector looks at the file every second; the first round of a new
# check is due within one interval of the agent taking the list.
WATCH_INTERVAL = 1.0


def _inventory(collector_ip: str, agent_ip: str, checks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "sites": [{"id": "lab", "segments": [{"id": "lab-a", "nodes": [
            {"id": "collector-node", "address": collector_ip},
            {"id": "agent-node", "address": agent_ip, "agent": "pushed"},
        ]}]}],
        "agents": {"pushed": {"checks": checks}},
    }  # fmt: skip


PING = {"id": "ping-collector", "kind": "icmp", "target": "${node:collector-node}",
        "interval": 1, "timeout": 0.5}  # fmt: skip
TCP = {"id": "tcp-collector", "kind": "tcp", "target": "${node-host:collector-node}:4317",
       "interval": NEW_CHECK_INTERVAL, "timeout": 0.5}  # fmt: skip


def _write(path: Path, data: object) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    temporary.replace(path)


def _query(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []


def _starts(db: Path, check: str) -> list[int]:
    rows = _query(db, "SELECT start_ns FROM observations WHERE check_id=? ORDER BY start_ns", check)
    return [int(r[0]) for r in rows]


def _statuses(db: Path) -> list[tuple[str, int, str, int]]:
    return _query(
        db, "SELECT version, accepted, reason, received_ns FROM config_status ORDER BY received_ns"
    )


def _start_agent(agent: Host, tmp: Path, run: int) -> subprocess.Popen[bytes]:
    config = {
        "agent_id": "pushed",
        "collector": {"address": f"{_collector_ip(tmp)}:4317", "insecure": True,
                      "flush_interval": 0.2, "heartbeat_interval": 2},
        "spool": {"dir": str(tmp / "spool")},
        "checks": [{"id": "lo", "kind": "icmp", "target": "127.0.0.1", "interval": 1,
                    "timeout": 0.5}],
    }  # fmt: skip
    path = tmp / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = [AGENT_CMD, "run", "--config", str(path), "--audit-file", str(tmp / f"audit-{run}")]
    return agent.spawn(argv, log_path=tmp / f"agent-{run}.log")


def _collector_ip(tmp: Path) -> str:
    return (tmp / "collector-ip").read_text()


def test_pushed_checks_change_reject_and_survive_a_restart(lab: Lab, tmp_path: Path) -> None:
    agent, r1, collector = lab.host("agent"), lab.router("r1"), lab.host("collector")
    lab.attach(agent, r1)
    lab.attach(collector, r1)
    collector_ip, agent_ip = collector.address_toward(r1), agent.address_toward(r1)
    (tmp_path / "collector-ip").write_text(collector_ip)
    inventory, db = tmp_path / "inventory.yaml", tmp_path / "collector.db"
    _write(inventory, _inventory(collector_ip, agent_ip, [PING]))
    url, collector_process = run_collector(
        collector, collector_ip, db, tmp_path, ["--insecure", "--inventory", str(inventory)]
    )
    first = _start_agent(agent, tmp_path, 1)

    # 1. On connect, the agent gets its list and runs it beside its local check.
    wait_for("the pushed check's results", lambda: len(_starts(db, "ping-collector")) >= 3, 30)
    assert _starts(db, "lo")
    assert [s[1] for s in _statuses(db)] == [1]

    # 2. A change to the file: the new check runs within one interval of being taken.
    _write(inventory, _inventory(collector_ip, agent_ip, [PING, TCP]))
    changed_ns = time.time_ns()
    wait_for("the new check's results", lambda: _starts(db, "tcp-collector"), 30)
    taken_ns = _statuses(db)[-1][3]
    first_round = _starts(db, "tcp-collector")[0]
    assert _statuses(db)[-1][1] == 1
    assert first_round - changed_ns < (WATCH_INTERVAL + NEW_CHECK_INTERVAL + 1.0) * 1e9
    assert first_round - taken_ns < (NEW_CHECK_INTERVAL + 0.5) * 1e9, tail(tmp_path / "agent-1.log")

    # 3. A list the agent refuses (interval 0): rejected with the reason; the
    # previous list keeps running. SIGHUP reloads too.
    bad = dict(TCP, id="too-fast", interval=0)
    _write(inventory, _inventory(collector_ip, agent_ip, [PING, TCP, bad]))
    collector_process.send_signal(signal.SIGHUP)
    wait_for("the rejection", lambda: _statuses(db)[-1][1] == 0, 30)
    version, _accepted, reason, rejected_ns = _statuses(db)[-1]
    assert "checks[2].interval" in reason
    time.sleep(2 * NEW_CHECK_INTERVAL + 1)
    assert [s for s in _starts(db, "tcp-collector") if s > rejected_ns]
    assert [s for s in _starts(db, "ping-collector") if s > rejected_ns]
    assert not _starts(db, "too-fast")
    info = [
        labels
        for name, labels, _ in scrape_samples(collector, url)
        if name == "slawatch_agent_config_info"
    ]
    assert info == [{"agent": "pushed", "version": version, "accepted": "false"}]

    # 4. An inventory the collector refuses changes nothing at all.
    before = len(_statuses(db))
    _write(inventory, "sites: [oops\n")
    collector_process.send_signal(signal.SIGHUP)
    reloads = wait_for(
        "the refused reload",
        lambda: {
            labels["result"]: value
            for name, labels, value in scrape_samples(collector, url)
            if name == "slawatch_inventory_reloads_total" and value
        }.get("invalid"),
        15,
    )
    assert reloads >= 1
    time.sleep(1.5)
    assert len(_statuses(db)) == before

    # 5. Restarted while the collector is gone: the cached list runs.
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=30)
    collector_process.kill()
    collector_process.wait(timeout=10)
    second = _start_agent(agent, tmp_path, 2)
    audit = tmp_path / "audit-2"
    wait_for(
        "cached checks to run",
        lambda: (
            audit.exists()
            and {"ping-collector", "tcp-collector"}
            <= {line.split("\t")[2] for line in audit.read_text().splitlines()}
        ),
        20,
    )
    second.send_signal(signal.SIGTERM)
    second.wait(timeout=30)
    assert "running 2 cached pushed checks" in (tmp_path / "agent-2.log").read_text()
