"""Running the real collector and agent inside lab hosts, and reading what they stored."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import AGENT_CMD, COLLECTOR_CMD
from tests.lab.netlab import Host, Lab

T = TypeVar("T")

_FETCH = (
    "import sys, urllib.request; "
    "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
)
# A TCP server that accepts and closes, for at most `limit` seconds.
_LISTENER = """
import socket, sys, time
server = socket.create_server(("0.0.0.0", int(sys.argv[1])), reuse_port=True)
server.settimeout(0.5)
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        server.accept()[0].close()
    except TimeoutError:
        pass
"""


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.25) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def start_collector(
    host: Host, address: str, db: Path, logs: Path, tls_dir: Path | None = None
) -> str:
    """Start slawatch-collector in ``host``; return its metrics URL once it answers.

    Plaintext (``--insecure``) unless ``tls_dir`` (a `pki init` folder) asks for mTLS.
    """
    security = ["--tls-dir", str(tls_dir)] if tls_dir is not None else ["--insecure"]
    return run_collector(host, address, db, logs, security)[0]


def run_collector(
    host: Host, address: str, db: Path, logs: Path, options: Sequence[str]
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start slawatch-collector with ``options``; (metrics URL, process) once it answers.
    Its log is appended to, so a restarted collector keeps one log."""
    process = host.spawn(
        [COLLECTOR_CMD, "run", *options, "--listen", f"{address}:4317",
         "--metrics-listen", f"{address}:9108", "--db", str(db)],
        log_path=logs / "collector.log", append=True,
    )  # fmt: skip
    url = f"http://{address}:9108/metrics"

    def answers() -> bool:
        try:
            return bool(host.run([sys.executable, "-c", _FETCH, url], timeout=10))
        except Exception:
            return False

    wait_for("the collector's /metrics", answers, timeout=30)
    return url, process


def start_agent(
    host: Host, config: dict[str, Any], logs: Path, name: str | None = None
) -> subprocess.Popen[bytes]:
    """Start slawatch-agent in ``host``; its log is ``agent.log``, or ``agent-NAME.log``
    (and its config ``agent-NAME.yaml``) when several agents share an agent id. Its
    spool is in ``logs`` unless the config says where."""
    stem = f"agent-{name or config['agent_id']}"
    path = logs / f"{stem}.yaml"
    config.setdefault("spool", {"dir": str(logs / f"spool-{name or config['agent_id']}")})
    path.write_text(yaml.safe_dump(config))
    log_path = logs / (f"{stem}.log" if name else "agent.log")
    return host.spawn([AGENT_CMD, "run", "--config", str(path)], log_path=log_path)


def start_tcp_listener(host: Host, port: int, seconds: float = 300) -> None:
    host.spawn([sys.executable, "-c", _LISTENER, str(port), str(seconds)])


def scrape_samples(host: Host, url: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of the collector's /metrics: (name, labels, value)."""
    text = host.run([sys.executable, "-c", _FETCH, url], timeout=10)
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def scrape(host: Host, url: str) -> dict[tuple[str, str], float]:
    """Samples by (name, check label) from the collector's /metrics (one per check)."""
    return {
        (name, labels.get("check", labels.get("agent", ""))): value
        for name, labels, value in scrape_samples(host, url)
    }


def packet_sums(db: Path, check_id: str, started_after_ns: int = 0) -> tuple[int, int, int]:
    """(rounds, packets sent, packets received) of a check's stored rounds."""
    if not db.exists():
        return (0, 0, 0)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            row = conn.execute(
                "SELECT count(*), coalesce(sum(packets_sent), 0), "
                "coalesce(sum(packets_received), 0) FROM observations "
                "WHERE check_id = ? AND start_ns > ?",
                (check_id, started_after_ns),
            ).fetchone()
        except sqlite3.OperationalError:
            return (0, 0, 0)
    return (int(row[0]), int(row[1]), int(row[2]))


def outcomes(db: Path, check_id: str, started_after_ns: int = 0) -> set[tuple[str, str]]:
    """Distinct (outcome, error class) of a check's stored rounds."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT DISTINCT outcome, error_class FROM observations "
            "WHERE check_id = ? AND start_ns > ?",
            (check_id, started_after_ns),
        ).fetchall()
    return {(str(a), str(b)) for a, b in rows}


def tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return f"({path.name} missing)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def probe_json(host: Host, argv: list[str], timeout: float = 120) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(host.run([AGENT_CMD, *argv, "--json"], timeout=timeout))
    return result


def two_hops(lab: Lab) -> tuple[Host, Host, Host]:
    """agent --- r1 --- target: the target is two hops from the agent."""
    r1, agent, target = lab.router("r1"), lab.host("agent"), lab.host("target")
    lab.attach(agent, r1)
    lab.attach(target, r1)
    return agent, r1, target


def ping_report(
    agent: Host, target_ip: str, count: int, interval: float = 0.002, timeout: float = 1.0
) -> dict[str, Any]:
    """`slawatch-agent probe icmp` run in the agent host, as parsed JSON."""
    return probe_json(
        agent,
        [
            "probe",
            "icmp",
            target_ip,
            "--count",
            str(count),
            "--interval",
            str(interval),
            "--timeout",
            str(timeout),
        ],
    )
