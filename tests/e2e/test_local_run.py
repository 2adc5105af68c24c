"""The README's main job: a collector with a local agent, on this machine only.

Run inside a fresh namespace that has only loopback, so the default ports are
free and nothing leaves the namespace.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import COLLECTOR_CMD
from tests.lab.netlab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def test_collector_with_local_agent_runs_and_summarises(lab: Lab, tmp_path: Path) -> None:
    host = lab.host("local")
    out = host.run(
        [COLLECTOR_CMD, "--log-level", "warning", "run", "--insecure",
         "--db", str(tmp_path / "c.db"),
         "--local-agent", str(REPO / "examples" / "local-agent.yaml"),
         "--summary-interval", "4", "--duration", "9"],
        timeout=60,
    )  # fmt: skip
    assert "metrics at http://127.0.0.1:9108/metrics" in out
    final = out.split("final:", 1)[1]
    checks_table = final.strip().split("\n\n")[0]  # then the coverage per agent
    rows = {line.split()[1]: line.split() for line in checks_table.splitlines()[2:]}
    assert set(rows) == {
        "icmp-loopback-v4",
        "icmp-loopback-v6",
        "tcp-collector-grpc",
        "tcp-closed-port",
        "http-collector-metrics",
        "host",
    }
    for check in ("icmp-loopback-v4", "icmp-loopback-v6"):
        sent, received = int(rows[check][5]), int(rows[check][6])
        assert sent >= 20, rows[check]
        assert received == sent, rows[check]
    assert rows["tcp-collector-grpc"][-1] == "ok"
    assert rows["http-collector-metrics"][-1] == "ok"
    assert rows["tcp-closed-port"][-2:] == ["refused", "(connect_refused)"]
    assert rows["host"][-1] in ("ok", "(rebooted)", "(resource_exhausted)")  # this machine's state

    # `summary` reads the same store afterwards, without a running collector.
    table = host.run([COLLECTOR_CMD, "summary", "--db", str(tmp_path / "c.db")])
    assert "icmp-loopback-v4" in table
    assert "tcp-closed-port" in table
    assert "refused (connect_refused)" in table
    assert "covered s" in table  # the coverage section, one line per agent


def test_ctrl_c_stops_collector_and_agent_cleanly(lab: Lab, tmp_path: Path) -> None:
    host = lab.host("local")
    argv = host.exec_argv(
        [COLLECTOR_CMD, "--log-level", "warning", "run", "--insecure",
         "--db", str(tmp_path / "c.db"),
         "--local-agent", str(REPO / "examples" / "local-agent.yaml")]
    )  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True, text=True)  # fmt: skip
    try:
        time.sleep(6)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends: the whole group
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    assert process.returncode == 0, out
    assert "Traceback" not in out
    leftover = subprocess.run(["ip", "netns", "pids", host.namespace], capture_output=True,
                              text=True, timeout=10).stdout.split()  # fmt: skip
    assert leftover == []  # the agent child is gone too
    with sqlite3.connect(tmp_path / "c.db") as conn:
        assert conn.execute("SELECT count(*) FROM observations").fetchone()[0] > 0
