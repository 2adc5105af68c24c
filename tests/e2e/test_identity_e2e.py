"""mTLS identity end to end in the network lab, with real processes (issue 4).

    agents ----.
                r1 --- collector      `slawatch-collector run --tls-dir`, certificates
    intruder --'                      from the real `pki init` / `pki issue` CLI

Two good agents stream ICMP and TCP checks of the collector host. Four bad
agents (real `slawatch-agent run` processes, from their own host) try to get in:

* stranger: trusts the collector's CA, but its certificate (for "good-1") is
  from another CA: the collector fails the TLS handshake;
* foreign-pki: all of its files come from another `pki init` (CA too): the
  agent itself rejects the collector's certificate, and never presents its own;
* impostor: the valid certificate of "mallory" with `agent_id: good-2`: the
  collector aborts the stream with PERMISSION_DENIED and the agent exits;
* plaintext: no certificate at all (`collector.insecure: true`) against the
  TLS port: the collector fails the handshake.

What really happens (and is asserted): the impostor exits with status 2 and
names the reason; the three transport-level refusals look to the agent like an
unreachable collector (UNAVAILABLE), so it keeps retrying with backoff and
never gets anything stored. Only the identity mismatch is counted in
/metrics (`rule="bad_identity"`); a failed handshake shows only in the
collector's log, as a line of gRPC core's. The good agents stream throughout
and are never disconnected.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import COLLECTOR_CMD
from tests.e2e.helpers import scrape_samples, start_agent, start_collector, tail, wait_for
from tests.lab.netlab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.timeout(90)]

GOOD = ("good-1", "good-2")
# The bad agents' checks and labels are their own, so that anything of theirs
# would be recognisable in the store whatever agent id it was stored under.
INTRUDER_CHECK = "intruder-ping"
INTRUDER_LABELS = {"role": "intruder"}
REFUSED_EXIT_WITHIN = 10.0
RETRIES_SEEN = 3  # connection attempts each retrying bad agent must have made and logged


def _pki(*argv: str) -> None:
    subprocess.run([COLLECTOR_CMD, "pki", *argv], check=True, capture_output=True, timeout=30)


def _tls(ca_dir: Path, cert_dir: Path, cert_of: str) -> dict[str, str]:
    return {
        "ca_file": str(ca_dir / "ca.crt"),
        "cert_file": str(cert_dir / "agents" / f"{cert_of}.crt"),
        "key_file": str(cert_dir / "agents" / f"{cert_of}.key"),
    }


def _config(
    agent_id: str, address: str, collector: dict[str, Any], checks: list[dict[str, Any]],
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "agent_id": agent_id,
        "labels": labels or {"role": "good"},
        "collector": {"address": f"{address}:4317", "flush_interval": 0.2, **collector},
        "checks": checks,
    }


def _counts(db: Path) -> dict[str, int]:
    """Stored observations per agent id (read-only)."""
    if not db.exists():
        return {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            rows = conn.execute("SELECT agent_id, count(*) FROM observations GROUP BY agent_id")
            return {str(agent): int(n) for agent, n in rows}
        except sqlite3.OperationalError:
            return {}


def _query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return list(conn.execute(sql, params))


def _log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _uplink_failures(path: Path) -> list[str]:
    return [line for line in _log(path).splitlines() if "WARNING agent.uplink:" in line]


def _stopped_summary(path: Path) -> dict[str, Any]:
    for line in _log(path).splitlines():
        if " INFO agent: stopped: " in line:
            summary: dict[str, Any] = json.loads(line.split(" INFO agent: stopped: ", 1)[1])
            return summary
    raise AssertionError(f"no run summary in {path.name}:\n{tail(path)}")


def test_bad_identities_are_refused_while_good_agents_stream(lab: Lab, tmp_path: Path) -> None:
    started = time.monotonic()
    r1 = lab.router("r1")
    collector, agents, intruder = lab.host("collector"), lab.host("agents"), lab.host("intruder")
    for host in (collector, agents, intruder):
        lab.attach(host, r1)
    address = collector.address_toward(r1)
    db, ours, theirs = tmp_path / "collector.db", tmp_path / "pki", tmp_path / "other-pki"
    _pki("init", "--dir", str(ours), "--name", address)
    _pki("init", "--dir", str(theirs), "--name", address)
    for agent_id in (*GOOD, "mallory"):
        _pki("issue", agent_id, "--dir", str(ours))
    _pki("issue", "good-1", "--dir", str(theirs))  # the same agent id, from another CA

    def diagnostics() -> str:
        return "\n".join(f"--- {log.name}:\n{tail(log)}" for log in sorted(tmp_path.glob("*.log")))

    metrics_url = start_collector(collector, address, db, tmp_path, tls_dir=ours)
    good_checks = [
        {"id": "ping-collector", "kind": "icmp", "target": address, "interval": 0.5,
         "packets": 3, "spacing": 0.02, "timeout": 0.3},
        {"id": "tcp-collector", "kind": "tcp", "target": f"{address}:4317", "interval": 0.5,
         "timeout": 0.3},
    ]  # fmt: skip
    good = {
        agent_id: start_agent(
            agents,
            _config(agent_id, address, {"tls": _tls(ours, ours, agent_id)}, good_checks),
            tmp_path,
            name=agent_id,
        )
        for agent_id in GOOD
    }

    def all_good_stored(minimum: int) -> dict[str, int] | None:
        for agent_id, process in good.items():
            assert process.poll() is None, f"{agent_id} exited with {process.returncode}"
        counts = _counts(db)
        return counts if all(counts.get(a, 0) >= minimum for a in GOOD) else None

    try:
        before = wait_for("both good agents' observations", lambda: all_good_stored(4), 20)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnostics()}") from None

    # -- the bad agents, from their own host ---------------------------------
    intruder_checks = [
        {"id": INTRUDER_CHECK, "kind": "icmp", "target": address, "interval": 0.5,
         "packets": 1, "timeout": 0.3},
    ]  # fmt: skip
    # trusts our CA, but its certificate is from theirs
    stranger_tls = {**_tls(theirs, theirs, "good-1"), "ca_file": str(ours / "ca.crt")}
    bad_configs: dict[str, tuple[str, dict[str, Any]]] = {
        "stranger": ("good-1", {"tls": stranger_tls}),
        "foreign-pki": ("good-1", {"tls": _tls(theirs, theirs, "good-1")}),
        "impostor": ("good-2", {"tls": _tls(ours, ours, "mallory")}),
        "plaintext": ("intruder-plain", {"insecure": True}),
    }
    bad = {
        name: start_agent(
            intruder,
            _config(agent_id, address, collector_block, intruder_checks, INTRUDER_LABELS),
            tmp_path,
            name=name,
        )
        for name, (agent_id, collector_block) in bad_configs.items()
    }
    bad_log = {name: tmp_path / f"agent-{name}.log" for name in bad}
    collector_log = tmp_path / "collector.log"

    try:
        # (b) the impostor: refused for good, and it says why.
        try:
            code = bad["impostor"].wait(timeout=REFUSED_EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the impostor still runs after {REFUSED_EXIT_WITHIN}s") from None
        assert code == 2, f"impostor exit status {code}"
        assert (
            "slawatch-agent: collector refused this agent: "
            "this certificate is for 'mallory', not for agent 'good-2' (PERMISSION_DENIED)"
        ) in _log(bad_log["impostor"])
        assert re.search(
            r"WARNING collector\.ingest\.service: ipv4:\S+: "
            r"certificate of 'mallory', hello claims 'good-2': refused",
            _log(collector_log),
        ), "the collector did not log the identity mismatch"

        # (a), (a'), (c): the handshake fails; the agent takes that for an
        # unreachable collector and retries with backoff (it keeps running).
        retrying = ("stranger", "foreign-pki", "plaintext")
        wait_for(
            f"{RETRIES_SEEN} logged connection failures of each retrying bad agent",
            lambda: all(len(_uplink_failures(bad_log[n])) >= RETRIES_SEEN for n in retrying),
            15,
        )
        for name in retrying:
            assert bad[name].poll() is None, f"{name} exited: {tail(bad_log[name])}"
            for line in _uplink_failures(bad_log[name]):
                assert f"collector {address}:4317: UNAVAILABLE" in line, line
        assert "Tls handshake failed" in _log(bad_log["foreign-pki"])  # it rejects the server
        assert "certificate signature failure" in _log(bad_log["foreign-pki"])

        # The stranger and the plaintext agent only see the collector hang up
        # ("Socket closed"), so after a few attempts without any session the
        # agent says what to check.
        for name in ("stranger", "foreign-pki"):
            assert "no session with collector" in _log(bad_log[name])
            assert "check collector.tls" in _log(bad_log[name])
        assert "refuses plaintext agents" in _log(bad_log["plaintext"])

        # The collector's log has gRPC core's handshake failures, one per attempt
        # of the stranger (bad client certificate) and of the plaintext agent;
        # the foreign-pki agent hangs up first and leaves no trace there.
        def handshake_failures() -> list[str] | None:
            log = _log(collector_log).splitlines()
            lines = [line for line in log if "Handshake failed" in line]
            bad_cert = [line for line in lines if "certificate signature failure" in line]
            plaintext = [line for line in lines if "WRONG_VERSION_NUMBER" in line]
            enough = len(bad_cert) >= RETRIES_SEEN and len(plaintext) >= RETRIES_SEEN
            return lines if enough else None

        wait_for("the collector's log of the failed handshakes", handshake_failures, 5)

        during = _counts(db)
        for agent_id in GOOD:
            assert during[agent_id] > before[agent_id], (before, during)

        # Stopped (SIGTERM), they wait up to 5 s for acks that never come, and
        # exit 0 having had nothing acked, nor even sent: no session, no batch.
        for name in retrying:
            bad[name].terminate()
        for name in retrying:
            assert bad[name].wait(timeout=10) == 0
            summary = _stopped_summary(bad_log[name])
            assert summary["observations_sent"] == 0, summary
            assert summary["observations_acked"] == 0, summary
        after = wait_for(
            "more observations of both good agents, after the bad ones are gone",
            lambda: all_good_stored(max(during[a] for a in GOOD) + 4),
            10,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnostics()}") from None

    # -- the store: nothing of the bad agents ----------------------------------
    assert set(after) == set(GOOD), after
    intruding = _query(db, "SELECT count(*) FROM observations WHERE check_id = ?", INTRUDER_CHECK)
    assert intruding == [(0,)], intruding
    agents_rows = dict(_query(db, "SELECT agent_id, labels_json FROM agents"))
    assert set(agents_rows) == set(GOOD), agents_rows
    assert all(json.loads(labels) == {"role": "good"} for labels in agents_rows.values())
    # One sequence epoch per good agent: no other process stored anything in their names.
    epochs = _query(db, "SELECT agent_id, count(DISTINCT sequence_epoch) FROM batches GROUP BY 1")
    assert dict(epochs) == dict.fromkeys(GOOD, 1), epochs

    # -- /metrics: one identity refusal; good agents connected, never reconnected
    samples = scrape_samples(collector, metrics_url)
    rejections = {
        labels["rule"]: value
        for name, labels, value in samples
        if name == "slawatch_ingest_rejections_total"
    }
    # Every rule has a series from the start (at 0): only the identity refusal counted.
    counted = {rule: value for rule, value in rejections.items() if value}
    assert counted == {"bad_identity": 1.0}, rejections
    sessions = {
        labels["agent"]: value
        for name, labels, value in samples
        if name == "slawatch_agent_sessions_total"
    }
    assert sessions == dict.fromkeys(GOOD, 1.0), sessions
    connected = {
        labels["agent"]: value
        for name, labels, value in samples
        if name == "slawatch_agent_connected"
    }
    assert connected == dict.fromkeys(GOOD, 1.0), connected
    for process in good.values():
        assert process.poll() is None
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"took {elapsed:.1f}s"
