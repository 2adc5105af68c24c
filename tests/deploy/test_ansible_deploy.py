"""The Ansible collection converges real systemd machines: one collector, two agents.

Booted with systemd-nspawn from a debootstrapped Debian 12 (tests/deploy/machines.py),
reached over SSH by `ansible-playbook slawatch.slawatch.site` as an operator would. The
tests run in order on one fleet: converge, then what ops rely on afterwards (idempotence,
check mode, inventory reload, upgrade, revocation).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.deploy.fleet import (
    UPGRADE_VERSION,
    VERSION,
    Deployment,
    PlayResult,
    build_wheelhouse,
    slawatch_inventory,
)
from tests.deploy.machines import (
    Fleet,
    debian_rootfs,
    machines_unavailable_reason,
    remove_stale_fleets,
)
from tests.e2e.helpers import wait_for

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(1500)]

CAP_NET_RAW = 1 << 13
MACHINES = {"collector": 10, "agent-a": 11, "agent-b": 12}


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    reason = machines_unavailable_reason()
    if reason is not None:
        skip_or_fail(reason)
    remove_stale_fleets()
    with tempfile.TemporaryDirectory(prefix="slawatch-deploy-") as tmp:
        work = Path(tmp)
        wheelhouse = work / "wheelhouse"
        build_wheelhouse(wheelhouse, work)
        with Fleet(debian_rootfs(), work) as fleet:
            machines = {name: fleet.boot(name, n) for name, n in MACHINES.items()}
            for machine in machines.values():
                fleet.wait_for_ssh(machine)
            yield Deployment(fleet, machines, work, wheelhouse)


@pytest.fixture(scope="module")
def converged(deployment: Deployment) -> PlayResult:
    result = deployment.play()
    result.assert_ok()
    return result


def proc_status(machine_pid: int, deployment: Deployment, machine: str) -> dict[str, str]:
    text = deployment.machines[machine].run(["cat", f"/proc/{machine_pid}/status"])
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def observations_of(deployment: Deployment, agent: str, check: str) -> int:
    rows = deployment.query(
        "SELECT count(*) FROM observations WHERE agent_id = "
        f"'{agent}' AND check_id = '{check}' AND packets_received > 0"
    )
    return int(rows[0][0])


def test_converge_starts_both_services(deployment: Deployment, converged: PlayResult) -> None:
    assert set(converged.recap) == set(MACHINES)
    assert all(changed > 0 for changed in converged.changed().values())
    assert deployment.machines["collector"].is_active("slawatch-collector") == "active"
    for agent in ("agent-a", "agent-b"):
        assert deployment.machines[agent].is_active("slawatch-agent") == "active"
    link = deployment.machines["collector"].run(["readlink", "/opt/slawatch/current"]).strip()
    assert link == f"/opt/slawatch/{VERSION}"


def test_agents_stream_over_mtls_and_are_stored(
    deployment: Deployment, converged: PlayResult
) -> None:
    # ICMP answered both ways proves the agents' raw sockets work as a system user.
    for agent, check in (("agent-a", "ping-b"), ("agent-b", "ping-a")):
        wait_for(f"{agent}'s {check} stored", lambda a=agent, c=check: observations_of(
            deployment, a, c) >= 2 or None, timeout=60)  # fmt: skip
    # Identities come from the certificates: the collector runs with --tls-dir only.
    unit = (deployment.machines["collector"].root
            / "etc/systemd/system/slawatch-collector.service").read_text()  # fmt: skip
    assert "--tls-dir /etc/slawatch-collector/pki" in unit
    assert "--insecure" not in unit
    agents = {row[0] for row in deployment.query("SELECT agent_id FROM agents")}
    assert agents == {"agent-a", "agent-b"}
    key = deployment.machines["agent-a"].run(
        ["stat", "-c", "%a %U", "/etc/slawatch-agent/agent.key"]).split()  # fmt: skip
    assert key == ["600", "slawatch-agent"]
    pki = deployment.machines["collector"].run(
        ["stat", "-c", "%a %U", "/etc/slawatch-collector/pki"]).split()  # fmt: skip
    assert pki == ["700", "slawatch-collector"]
    # The key never shows in Ansible's output.
    key_text = (deployment.machines["agent-a"].root / "etc/slawatch-agent/agent.key").read_text()
    body = key_text.splitlines()[1]
    assert body not in (deployment.work / "plays.log").read_text()


def test_agent_has_only_cap_net_raw_and_collector_none(
    deployment: Deployment, converged: PlayResult
) -> None:
    agent = deployment.machines["agent-a"]
    status = proc_status(agent.main_pid("slawatch-agent"), deployment, "agent-a")
    assert status["Uid"].split()[0] != "0"
    for field in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(status[field], 16) == CAP_NET_RAW, f"agent {field} = {status[field]}"
    collector = deployment.machines["collector"]
    status = proc_status(collector.main_pid("slawatch-collector"), deployment, "collector")
    assert status["Uid"].split()[0] != "0"
    for field in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(status[field], 16) == 0, f"collector {field} = {status[field]}"


@pytest.mark.parametrize(("machine", "unit"), [("agent-a", "slawatch-agent"),
                                               ("collector", "slawatch-collector")])  # fmt: skip
def test_unit_exposure_at_most_2(
    deployment: Deployment, converged: PlayResult, machine: str, unit: str
) -> None:
    out = deployment.machines[machine].run(
        ["systemd-analyze", "security", "--offline=true", f"/etc/systemd/system/{unit}.service"]
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert match, out
    assert float(match.group(1)) <= 2.0, out


def test_second_run_changes_nothing(deployment: Deployment, converged: PlayResult) -> None:
    again = deployment.play()
    again.assert_ok()
    assert again.changed() == dict.fromkeys(MACHINES, 0), again.output[-4000:]


def test_check_diff_reports_nothing(deployment: Deployment, converged: PlayResult) -> None:
    checked = deployment.play("--check", "--diff")
    checked.assert_ok()
    assert checked.changed() == dict.fromkeys(MACHINES, 0), checked.output[-4000:]
    assert "--- before" not in checked.output
    assert "+++ after" not in checked.output


def test_inventory_edit_reloads_the_collector_and_is_pushed(
    deployment: Deployment, converged: PlayResult
) -> None:
    collector = deployment.machines["collector"]
    collector_pid = collector.main_pid("slawatch-collector")
    agent_pids = {a: deployment.machines[a].main_pid("slawatch-agent")
                  for a in ("agent-a", "agent-b")}  # fmt: skip
    deployment.settings["inventory"] = slawatch_inventory(extra_check=True)
    result = deployment.play()
    result.assert_ok()
    assert result.changed()["collector"] > 0
    assert "RUNNING HANDLER [slawatch.slawatch.slawatch_collector : Reload" in result.output
    wait_for("the pushed tcp-collector check stored", lambda: deployment.query(
        "SELECT count(*) FROM observations WHERE agent_id = 'agent-b' "
        "AND check_id = 'tcp-collector' AND outcome = 'ok'")[0][0] >= 2 or None,
        timeout=60)  # fmt: skip
    assert collector.main_pid("slawatch-collector") == collector_pid
    assert {a: deployment.machines[a].main_pid("slawatch-agent") for a in agent_pids} == agent_pids


def agent_certificates(deployment: Deployment, agent: str) -> list[dict[str, str]]:
    out = deployment.machines["collector"].run([
        "/opt/slawatch/current/bin/slawatch-collector", "pki", "list",
        "--dir", "/etc/slawatch-collector/pki", "--format", "json",
    ])  # fmt: skip
    return [c for c in json.loads(out) if c["agent_id"] == agent]


def test_certificate_is_renewed_before_expiry(
    deployment: Deployment, converged: PlayResult
) -> None:
    agent = deployment.machines["agent-a"]
    (before,) = [c for c in agent_certificates(deployment, "agent-a") if c["location"] == "current"]
    pid = agent.main_pid("slawatch-agent")
    # 825-day certificates renewed when they expire within 850 days: due now.
    result = deployment.play("--limit", "agent-a", "-e", "slawatch_agent_cert_days=900",
                             "-e", "slawatch_agent_cert_renew_days=850")  # fmt: skip
    result.assert_ok()
    assert result.changed()["agent-a"] > 0
    certificates = {c["serial"]: c for c in agent_certificates(deployment, "agent-a")}
    (current,) = [c for c in certificates.values() if c["location"] == "current"]
    assert current["serial"] != before["serial"]
    assert certificates[before["serial"]]["state"] == "revoked"  # superseded: no longer valid
    assert agent.main_pid("slawatch-agent") != pid
    since = time.time_ns()
    wait_for("agent-a streams with its new certificate", lambda: deployment.query(
        "SELECT count(*) FROM observations WHERE agent_id = 'agent-a' "
        f"AND start_ns > {since}")[0][0] >= 2 or None, timeout=60)  # fmt: skip


def test_upgrade_restarts_and_loses_no_observation(
    deployment: Deployment, converged: PlayResult
) -> None:
    pids = {name: m.main_pid("slawatch-collector" if name == "collector" else "slawatch-agent")
            for name, m in deployment.machines.items()}  # fmt: skip
    deployment.settings["version"] = UPGRADE_VERSION
    result = deployment.play()
    result.assert_ok()
    for name, machine in deployment.machines.items():
        unit = "slawatch-collector" if name == "collector" else "slawatch-agent"
        assert machine.is_active(unit) == "active"
        assert machine.main_pid(unit) != pids[name], f"{name} was not restarted"
        link = machine.run(["readlink", "/opt/slawatch/current"]).strip()
        assert link == f"/opt/slawatch/{UPGRADE_VERSION}"
    wait_for("agents report the new version", lambda: {
        row[0] for row in deployment.query("SELECT software_version FROM agents")
    } == {UPGRADE_VERSION} or None, timeout=60)  # fmt: skip
    # Everything the agents spooled before, during and after the upgrade is stored, once.
    cutoff_ns = time.time_ns() - 2_000_000_000
    produced = {
        row for agent in ("agent-a", "agent-b") for row in deployment.produced(agent)
        if row[2] < cutoff_ns
    }  # fmt: skip
    wait_for("every spooled observation stored", lambda: produced <= deployment.stored() or None,
             timeout=60)  # fmt: skip
    total, distinct = deployment.query(
        "SELECT count(*), count(DISTINCT agent_id || check_id || start_ns) FROM observations"
    )[0]
    assert total == distinct, "an observation was stored twice"
    assert len(produced) > 20


def test_removed_agent_is_revoked_and_refused(
    deployment: Deployment, converged: PlayResult
) -> None:
    deployment.settings["agents"] = ["agent-a"]
    deployment.settings["revoked"] = ["agent-b"]
    result = deployment.play()
    result.assert_ok()
    assert result.changed()["collector"] > 0
    agent_b = deployment.machines["agent-b"]
    # The collector ends its stream: the agent exits 2 and systemd leaves it stopped.
    wait_for("agent-b refused and stopped",
             lambda: agent_b.is_active("slawatch-agent") in ("failed", "inactive") or None,
             timeout=30)  # fmt: skip
    journal = agent_b.run(["journalctl", "-u", "slawatch-agent", "--no-pager", "-n", "50"])
    assert "revoked" in journal, journal[-3000:]
    stopped_at = deployment.query(
        "SELECT count(*) FROM observations WHERE agent_id = 'agent-b'")[0][0]  # fmt: skip
    before_a = deployment.query(
        "SELECT count(*) FROM observations WHERE agent_id = 'agent-a'")[0][0]  # fmt: skip
    wait_for("agent-a goes on streaming", lambda: deployment.query(
        "SELECT count(*) FROM observations WHERE agent_id = 'agent-a'")[0][0] > before_a + 2
        or None, timeout=30)  # fmt: skip
    after = deployment.query("SELECT count(*) FROM observations WHERE agent_id = 'agent-b'")[0][0]
    assert after == stopped_at
    # Restarted by hand, the revoked agent is refused again.
    agent_b.run(["systemctl", "restart", "slawatch-agent"])
    wait_for("agent-b refused again",
             lambda: agent_b.is_active("slawatch-agent") in ("failed", "inactive") or None,
             timeout=30)  # fmt: skip
    assert (
        deployment.query("SELECT count(*) FROM observations WHERE agent_id = 'agent-b'")[0][0]
        == stopped_at
    )
    # A second run with the same revocation changes nothing.
    again = deployment.play()
    again.assert_ok()
    assert again.changed() == {"collector": 0, "agent-a": 0}, again.output[-4000:]
