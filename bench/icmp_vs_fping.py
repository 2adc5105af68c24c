"""CPU per ICMP probe of the slawatch agent against fping, on the same targets, in one run.

What it measures, for each target count (default 100 and 1,000):

* fping: ``fping -q -c COUNT -p PERIOD -i 1 TARGETS...``; CPU seconds (user + system) of
  the fping process from its rusage, divided by the echoes it reports as sent.
* the agent: ``slawatch-agent run`` with one ICMP check per target, each doing exactly one
  round of the same echoes at the same spacing, streaming to a real collector;
  ``cpu_seconds_probing / icmp_packets_sent`` from the agent's ``--summary-json``.
  The agent's figure includes encoding and streaming observations over gRPC; fping only
  prints. The collector's own CPU is recorded in the JSON output but not charged to the agent.
* peak RSS of both: the agent's from its summary (its own VmHWM), fping's from its VmHWM,
  sampled every 50 ms while it runs.

Both tools send the same number of probes (default 10,000 per scenario) at the same rate
(default 1,000/s): 100 targets x 100 echoes 100 ms apart, 1,000 targets x 10 echoes 1 s
apart. Each scenario runs ``--repeat`` times (default 3), alternating the tools; the table
shows the median CPU per probe and the largest peak RSS. Targets: agent CPU per probe at
most 1.5x fping's; agent peak RSS at most 50 MB (10^6 bytes) with 1,000 ICMP checks.
A missed target is reported, not an error: the exit status is 0 unless the benchmark
itself could not run.

Network safety: every process runs inside a network namespace the benchmark creates
(``swbench-<pid>``, only ``lo`` up) and all targets are loopback addresses, so no packet
leaves that namespace. The namespace is deleted at the end, also on failure or Ctrl-C.

Run as root (network namespaces, raw ICMP), from the repository root:

    .venv/bin/python bench/icmp_vs_fping.py                 # ~3 minutes
    .venv/bin/python bench/icmp_vs_fping.py --quick         # smoke run, ~20 s
    .venv/bin/python bench/icmp_vs_fping.py --targets 1000 --repeat 5 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
AGENT = VENV_BIN / "slawatch-agent"
COLLECTOR = VENV_BIN / "slawatch-collector"

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
GRPC_PORT = 14317
METRICS_PORT = 19108

DEFAULT_PROBES = 10_000
QUICK_PROBES = 2_000
DEFAULT_RATE = 1_000.0  # echoes per second, for both tools
SPREAD_SECONDS = 1.0  # the agent's check start times are spread over this long
ECHO_TIMEOUT = 1.0
MARGIN_SECONDS = 2.0  # agent --duration beyond the last scheduled send

CPU_RATIO_TARGET = 1.5
RSS_TARGET_BYTES = 50_000_000
RSS_TARGET_CHECKS = 1_000

COMMAND_TIMEOUT = 30.0
STARTUP_TIMEOUT = 20.0  # collector start, agent imports
STOP_TIMEOUT = 10.0
POLL_SECONDS = 0.05
LOG_LINES_KEPT = 20

_FPING_SUMMARY = re.compile(r"^(\S+)\s*: xmt/rcv/%loss = (\d+)/(\d+)/", re.MULTILINE)
_LOG_PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")


class BenchError(RuntimeError):
    """The benchmark itself could not run a step (not a missed target)."""


# -- scenarios --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    """``targets`` destinations, ``packets`` echoes each, ``spacing`` seconds apart."""

    targets: int
    packets: int
    spacing: float

    @classmethod
    def at_rate(cls, targets: int, probes: int, rate: float) -> Scenario:
        """About ``probes`` echoes in all, ``rate`` per second over all targets."""
        return cls(targets, max(1, round(probes / targets)), targets / rate)

    @property
    def probes(self) -> int:
        return self.targets * self.packets

    @property
    def send_seconds(self) -> float:
        """From a target's first echo to its last."""
        return (self.packets - 1) * self.spacing

    def addresses(self) -> list[str]:
        """127.0.0.1, 127.0.0.2, ... (1,000 targets end at 127.0.3.232)."""
        first = int(LOOPBACK.network_address) + 1
        addresses = [ipaddress.IPv4Address(first + i) for i in range(self.targets)]
        if not all(a in LOOPBACK for a in addresses):
            raise BenchError("targets must stay inside 127.0.0.0/8")
        return [str(a) for a in addresses]


# -- results ----------------------------------------------------------------


@dataclass(slots=True)
class ToolRun:
    """One run of one tool on one scenario."""

    tool: str
    expected_probes: int
    probes_sent: int
    replies: int
    cpu_seconds: float
    peak_rss_bytes: int
    wall_seconds: float
    exit_code: int
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def us_per_probe(self) -> float:
        return self.cpu_seconds / self.probes_sent * 1e6 if self.probes_sent else float("nan")


@dataclass(slots=True)
class ScenarioResult:
    scenario: Scenario
    fping: list[ToolRun] = field(default_factory=list)
    agent: list[ToolRun] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def median_us(runs: Sequence[ToolRun]) -> float | None:
    return statistics.median(r.us_per_probe for r in runs) if runs else None


def max_rss(runs: Sequence[ToolRun]) -> int | None:
    return max(r.peak_rss_bytes for r in runs) if runs else None


# -- child processes --------------------------------------------------------


class Children:
    """Every process the benchmark starts, so all can be stopped on the way out."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: Sequence[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        self._procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self._procs:
            stop_process(proc)
        self._procs.clear()


def stop_process(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; return the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout)


@dataclass(frozen=True, slots=True)
class Reaped:
    """How a child ended and what it used."""

    exit_code: int
    usage: resource.struct_rusage
    # Largest VmHWM seen while it ran: the peak RSS of its own memory. ru_maxrss is not
    # usable for a child: exec records the forking parent's RSS into it (here ~20 MB).
    vm_hwm_bytes: int


def vm_hwm_bytes(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match[1]) * 1024 if match else 0


def wait_with_rusage(proc: subprocess.Popen[bytes], timeout: float) -> Reaped:
    """Reap ``proc`` within ``timeout`` seconds, sampling its peak RSS meanwhile."""
    deadline = time.monotonic() + timeout
    peak = 0
    while True:
        peak = max(peak, vm_hwm_bytes(proc.pid))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return Reaped(proc.returncode, usage, peak)
        if time.monotonic() >= deadline:
            stop_process(proc)
            raise BenchError(f"{proc.args!r} did not finish within {timeout:.0f}s")
        time.sleep(POLL_SECONDS)


def cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def run_checked(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(argv)}: timed out") from exc
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def problem_lines(text: str) -> list[str]:
    """Warning, error and traceback lines of a log, at most ``LOG_LINES_KEPT``."""
    found = [line.strip() for line in text.splitlines() if _LOG_PROBLEM.search(line)]
    return found[:LOG_LINES_KEPT]


def tail(text: str, lines: int = LOG_LINES_KEPT) -> str:
    return "\n".join(text.splitlines()[-lines:])


# -- the network namespace --------------------------------------------------


@contextlib.contextmanager
def network_namespace(name: str) -> Iterator[str]:
    """A fresh namespace with only ``lo`` up; deleted on the way out."""
    run_checked(["ip", "netns", "add", name])
    try:
        run_checked(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"])
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], timeout=COMMAND_TIMEOUT, check=False)


def in_namespace(namespace: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", namespace, *argv]


def netns_exec_overhead(namespace: str, samples: int = 5) -> float:
    """CPU seconds ``ip netns exec`` itself costs a child (charged to fping's rusage)."""
    costs = []
    for _ in range(samples):
        proc = subprocess.Popen(in_namespace(namespace, ["/bin/true"]))
        costs.append(cpu_seconds(wait_with_rusage(proc, COMMAND_TIMEOUT).usage))
    return statistics.median(costs)


def port_accepts(namespace: str, port: int) -> bool:
    probe = (
        "import socket, sys\n"
        "socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=0.5).close()\n"
    )
    argv = in_namespace(namespace, [sys.executable, "-c", probe, str(port)])
    try:
        done = subprocess.run(argv, capture_output=True, timeout=5, check=False)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


# -- collector --------------------------------------------------------------


@dataclass(slots=True)
class Collector:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system


def start_collector(children: Children, namespace: str, workdir: Path) -> Collector:
    log_path = workdir / "collector.log"
    (workdir / "c.db").unlink(missing_ok=True)
    argv = [
        str(COLLECTOR),
        "--log-level",
        "warning",
        "run",
        "--insecure",
        "--listen",
        f"127.0.0.1:{GRPC_PORT}",
        "--metrics-listen",
        f"127.0.0.1:{METRICS_PORT}",
        "--db",
        str(workdir / "c.db"),
    ]
    with log_path.open("wb") as log:
        proc = children.start(in_namespace(namespace, argv), log)
    collector = Collector(proc, log_path)
    wait_for_collector(collector, namespace)
    return collector


def wait_for_collector(collector: Collector, namespace: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if collector.proc.poll() is not None:
            log = collector.log_path.read_text(errors="replace")
            raise BenchError(f"collector exited with {collector.proc.returncode}:\n{tail(log)}")
        if port_accepts(namespace, GRPC_PORT):
            return
        time.sleep(0.2)
    raise BenchError(f"collector did not accept connections within {STARTUP_TIMEOUT:.0f}s")


# -- fping ------------------------------------------------------------------


def fping_argv(scenario: Scenario) -> list[str]:
    fping = shutil.which("fping") or "/usr/bin/fping"
    period_ms = max(1, round(scenario.spacing * 1000))
    return [fping, "-q", "-c", str(scenario.packets), "-p", str(period_ms), "-i", "1"]


def parse_fping_summary(text: str) -> tuple[int, int, int]:
    """(targets reported, echoes sent, replies) from fping's per-target summary lines."""
    rows = _FPING_SUMMARY.findall(text)
    return len(rows), sum(int(r[1]) for r in rows), sum(int(r[2]) for r in rows)


def run_fping(
    children: Children, namespace: str, scenario: Scenario, workdir: Path, overhead: float
) -> ToolRun:
    log_path = workdir / f"fping-{scenario.targets}t-{time.strftime('%H%M%S')}.log"
    argv = in_namespace(namespace, [*fping_argv(scenario), *scenario.addresses()])
    timeout = scenario.send_seconds + ECHO_TIMEOUT + COMMAND_TIMEOUT
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = children.start(argv, log)
        reaped = wait_with_rusage(proc, timeout)
    wall = time.monotonic() - started
    text = log_path.read_text(errors="replace")
    reported, sent, replies = parse_fping_summary(text)
    run = ToolRun(
        tool="fping",
        expected_probes=scenario.probes,
        probes_sent=sent,
        replies=replies,
        cpu_seconds=max(0.0, cpu_seconds(reaped.usage) - overhead),
        peak_rss_bytes=reaped.vm_hwm_bytes,
        wall_seconds=round(wall, 3),
        exit_code=reaped.exit_code,
        details={
            "cpu_seconds_raw": cpu_seconds(reaped.usage),
            "netns_exec_overhead": overhead,
            "log": str(log_path),
        },
    )
    run.problems = fping_problems(run, scenario, reported, text)
    return run


def fping_problems(run: ToolRun, scenario: Scenario, reported: int, text: str) -> list[str]:
    problems = []
    if run.exit_code != 0:
        problems.append(f"fping exited with {run.exit_code}: {tail(text, 3)}")
    if reported != scenario.targets:
        problems.append(f"fping reported {reported} of {scenario.targets} targets")
    if run.probes_sent != run.expected_probes:
        problems.append(f"fping sent {run.probes_sent} of {run.expected_probes} echoes")
    if run.replies < run.probes_sent:
        problems.append(f"fping got {run.replies} replies to {run.probes_sent} echoes")
    return problems


# -- agent ------------------------------------------------------------------


def agent_duration(scenario: Scenario) -> float:
    return scenario.send_seconds + SPREAD_SECONDS + MARGIN_SECONDS


def agent_interval(scenario: Scenario) -> float:
    """Longer than the whole run, so every check does exactly one round."""
    round_seconds = scenario.send_seconds + ECHO_TIMEOUT
    return float(int(agent_duration(scenario) + round_seconds) + 10)


def agent_config(scenario: Scenario) -> str:
    interval = agent_interval(scenario)
    check = (
        f"kind: icmp, interval: {interval:g}, packets: {scenario.packets}, "
        f"spacing: {scenario.spacing:g}, timeout: {ECHO_TIMEOUT:g}"
    )
    lines = [
        "agent_id: bench",
        f'collector: {{address: "127.0.0.1:{GRPC_PORT}", insecure: true}}',
        f"jitter: {SPREAD_SECONDS / interval:.6f}",
        "checks:",
    ]
    lines += [
        f"  - {{id: t{i}, target: {address}, {check}}}"
        for i, address in enumerate(scenario.addresses())
    ]
    return "\n".join(lines) + "\n"


def agent_argv(config: Path, summary: Path, duration: float) -> list[str]:
    return [
        str(AGENT),
        "--log-level",
        "info",
        "run",
        "--config",
        str(config),
        "--duration",
        f"{duration:g}",
        "--summary-json",
        str(summary),
        "--collector",
        f"127.0.0.1:{GRPC_PORT}",
        "--spool-dir",
        str(config.parent / "agent-spool"),
    ]


def run_agent(
    children: Children,
    namespace: str,
    scenario: Scenario,
    workdir: Path,
    collector: Collector,
) -> ToolRun:
    stem = f"agent-{scenario.targets}t"
    run_stem = f"{stem}-{time.strftime('%H%M%S')}"
    config, summary_path = workdir / f"{stem}.yaml", workdir / f"{run_stem}.json"
    log_path = workdir / f"{run_stem}.log"
    config.write_text(agent_config(scenario))
    duration = agent_duration(scenario)
    argv = in_namespace(namespace, agent_argv(config, summary_path, duration))
    collector_cpu_before = collector.cpu_seconds()
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = children.start(argv, log)
        reaped = wait_with_rusage(proc, duration + STARTUP_TIMEOUT + COMMAND_TIMEOUT)
    wall = time.monotonic() - started
    text = log_path.read_text(errors="replace")
    code = reaped.exit_code
    if code != 0 or not summary_path.exists():
        raise BenchError(f"agent exited with {code} and no summary:\n{tail(text)}")
    summary = json.loads(summary_path.read_text())
    run = ToolRun(
        tool="agent",
        expected_probes=scenario.probes,
        probes_sent=int(summary["icmp_packets_sent"]),
        replies=int(summary["icmp_replies_received"]),
        cpu_seconds=float(summary["cpu_seconds_probing"]),
        peak_rss_bytes=int(summary["peak_rss_bytes"]),
        wall_seconds=round(wall, 3),
        exit_code=code,
        details={
            "summary": summary,
            "process_cpu_seconds": cpu_seconds(reaped.usage),
            "process_vm_hwm_bytes": reaped.vm_hwm_bytes,
            "collector_cpu_seconds": round(collector.cpu_seconds() - collector_cpu_before, 4),
            "duration": duration,
            "interval": agent_interval(scenario),
            "log": str(log_path),
        },
    )
    run.problems = agent_problems(run, scenario, summary) + problem_lines(text)
    return run


def agent_problems(run: ToolRun, scenario: Scenario, summary: dict[str, Any]) -> list[str]:
    problems = []
    if run.probes_sent != run.expected_probes:
        problems.append(f"agent sent {run.probes_sent} of {run.expected_probes} echoes")
    if run.replies < run.probes_sent:
        problems.append(f"agent matched {run.replies} replies to {run.probes_sent} echoes")
    if summary["rounds_started"] != scenario.targets:
        problems.append(f"rounds_started {summary['rounds_started']} != {scenario.targets}")
    if summary["rounds_skipped"]:
        problems.append(f"rounds_skipped {summary['rounds_skipped']}")
    if summary["observations_acked"] != scenario.targets:
        problems.append(
            f"observations sent/acked {summary['observations_sent']}/"
            f"{summary['observations_acked']}, expected {scenario.targets}"
        )
    if summary["observations_dropped"]:
        problems.append(f"observations_dropped {summary['observations_dropped']}")
    return problems


# -- running everything -----------------------------------------------------


def run_scenario(
    children: Children,
    namespace: str,
    scenario: Scenario,
    repeat: int,
    workdir: Path,
    collector: Collector,
    overhead: float,
) -> ScenarioResult:
    result = ScenarioResult(scenario)
    for attempt in range(1, repeat + 1):
        log(f"{scenario.targets} targets, run {attempt}/{repeat}: fping ...")
        try:
            result.fping.append(run_fping(children, namespace, scenario, workdir, overhead))
        except BenchError as exc:
            result.failures.append(f"fping run {attempt}: {exc}")
        log(f"{scenario.targets} targets, run {attempt}/{repeat}: agent ...")
        try:
            result.agent.append(run_agent(children, namespace, scenario, workdir, collector))
        except BenchError as exc:
            result.failures.append(f"agent run {attempt}: {exc}")
    return result


def run_benchmark(
    scenarios: Sequence[Scenario], repeat: int, workdir: Path
) -> tuple[list[ScenarioResult], list[str]]:
    """Every scenario inside one fresh namespace; returns results and collector problems."""
    children = Children()
    with network_namespace(f"swbench-{os.getpid()}") as namespace:
        try:
            overhead = netns_exec_overhead(namespace)
            collector = start_collector(children, namespace, workdir)
            results = [
                run_scenario(children, namespace, s, repeat, workdir, collector, overhead)
                for s in scenarios
            ]
            code = stop_process(collector.proc)
        finally:
            children.stop_all()
    collector_log = collector.log_path.read_text(errors="replace")
    collector_problems = problem_lines(collector_log)
    if code not in (0, -signal.SIGTERM):
        collector_problems.append(f"collector exited with {code}")
    return results, collector_problems


# -- reporting --------------------------------------------------------------


def verdicts(result: ScenarioResult) -> list[str]:
    """PASS/FAIL of each target this scenario is judged against."""
    fping, agent = median_us(result.fping), median_us(result.agent)
    out = []
    if fping is None or agent is None:
        out.append("no data")
    else:
        ratio = agent / fping
        ok = "PASS" if ratio <= CPU_RATIO_TARGET else "FAIL"
        out.append(f"CPU {ok} ({ratio:.2f}x vs <= {CPU_RATIO_TARGET}x)")
    rss = max_rss(result.agent)
    if result.scenario.targets == RSS_TARGET_CHECKS and rss is not None:
        ok = "PASS" if rss <= RSS_TARGET_BYTES else "FAIL"
        out.append(f"RSS {ok} ({rss / 1e6:.1f} vs <= {RSS_TARGET_BYTES / 1e6:.0f} MB)")
    return out


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(results: Sequence[ScenarioResult]) -> str:
    header = (
        "| targets | probes | fping CPU us/probe | agent CPU us/probe | ratio agent/fping "
        "| fping peak RSS MB | agent peak RSS MB | targets met |"
    )
    rows = [header, "|" + "---|" * 8]
    for r in results:
        fping, agent = median_us(r.fping), median_us(r.agent)
        ratio = agent / fping if fping and agent is not None else None
        fping_rss, agent_rss = max_rss(r.fping), max_rss(r.agent)
        cells = [
            str(r.scenario.targets),
            f"{r.scenario.probes:,}",
            fmt(fping),
            fmt(agent),
            fmt(ratio, 2),
            fmt(fping_rss / 1e6 if fping_rss is not None else None),
            fmt(agent_rss / 1e6 if agent_rss is not None else None),
            "; ".join(verdicts(r)),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def per_run_lines(results: Sequence[ScenarioResult]) -> list[str]:
    lines = []
    for r in results:
        for run in (*r.fping, *r.agent):
            extra = ""
            if run.tool == "agent":
                extra = f", collector CPU {run.details['collector_cpu_seconds']:.2f}s"
            lines.append(
                f"{r.scenario.targets:>5} {run.tool:<5}: {run.probes_sent} sent, "
                f"{run.replies} replies, CPU {run.cpu_seconds:.3f}s "
                f"({run.us_per_probe:.1f} us/probe), RSS {run.peak_rss_bytes / 1e6:.1f} MB, "
                f"wall {run.wall_seconds:.1f}s{extra}"
            )
    return lines


def problems_report(results: Sequence[ScenarioResult], collector: Sequence[str]) -> list[str]:
    lines = []
    for r in results:
        lines += [f"{r.scenario.targets} targets: {f}" for f in r.failures]
        for i, run in enumerate((*r.fping, *r.agent)):
            lines += [f"{r.scenario.targets} targets, {run.tool} #{i}: {p}" for p in run.problems]
    return lines + [f"collector: {p}" for p in collector]


def missed_targets(results: Sequence[ScenarioResult]) -> list[str]:
    missed = []
    for r in results:
        missed += [f"{r.scenario.targets} targets: {v}" for v in verdicts(r) if "PASS" not in v]
    if not any(r.scenario.targets == RSS_TARGET_CHECKS for r in results):
        missed.append(f"RSS target not evaluated: no run with {RSS_TARGET_CHECKS} targets")
    return missed


def first_line(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (done.stdout or done.stderr).strip().splitlines()[0]


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model[1].strip() if model else "unknown",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "fping": first_line([shutil.which("fping") or "/usr/bin/fping", "-v"]),
        "loadavg_at_start": os.getloadavg(),
    }


def as_json(
    results: Sequence[ScenarioResult], collector: Sequence[str], info: dict[str, Any]
) -> dict[str, Any]:
    scenarios = []
    for r in results:
        fping, agent = median_us(r.fping), median_us(r.agent)
        scenarios.append(
            {
                "scenario": asdict(r.scenario) | {"probes": r.scenario.probes},
                "fping_us_per_probe_median": fping,
                "agent_us_per_probe_median": agent,
                "ratio": agent / fping if fping and agent is not None else None,
                "fping_peak_rss_bytes_max": max_rss(r.fping),
                "agent_peak_rss_bytes_max": max_rss(r.agent),
                "verdicts": verdicts(r),
                "runs": [asdict(run) | {"us_per_probe": run.us_per_probe} for run in r.fping]
                + [asdict(run) | {"us_per_probe": run.us_per_probe} for run in r.agent],
                "failures": r.failures,
            }
        )
    return {"machine": info, "scenarios": scenarios, "collector_problems": list(collector)}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- command line -----------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[100, 1000], metavar="N")
    parser.add_argument("--repeat", type=int, help="runs per scenario (default 3, quick 1)")
    parser.add_argument("--probes", type=int, help=f"echoes per scenario ({DEFAULT_PROBES:,})")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="echoes per second")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write every figure here")
    parser.add_argument("--workdir", type=Path, help="keep configs and logs here")
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: {QUICK_PROBES:,} echoes, 1 run"
    )
    args = parser.parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.probes = args.probes or (QUICK_PROBES if args.quick else DEFAULT_PROBES)
    if args.repeat < 1 or args.probes < 1 or args.rate <= 0 or min(args.targets) < 1:
        parser.error("--targets, --repeat, --probes and --rate must be positive")
    if max(args.targets) > 65_000:
        parser.error("at most 65,000 targets")
    return args


def check_environment() -> None:
    if os.geteuid() != 0:
        raise BenchError("run as root: it creates a network namespace and sends raw ICMP")
    for path in (AGENT, COLLECTOR):
        if not path.exists():
            raise BenchError(f"{path} is missing: install the project into {REPO / '.venv'}")
    if shutil.which("fping") is None and not Path("/usr/bin/fping").exists():
        raise BenchError("fping is not installed")


@contextlib.contextmanager
def working_directory(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="swbench-") as tmp:
        yield Path(tmp)


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # so SIGTERM cleans up like Ctrl-C
    scenarios = [Scenario.at_rate(t, args.probes, args.rate) for t in args.targets]
    try:
        check_environment()
        info = machine()
        log(f"machine: {info}")
        with working_directory(args.workdir) as workdir:
            results, collector = run_benchmark(scenarios, args.repeat, workdir)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; namespace and child processes cleaned up", file=sys.stderr)
        return 130
    print_report(results, collector, args.repeat)
    if args.json:
        args.json.write_text(json.dumps(as_json(results, collector, info), indent=2) + "\n")
    return 0


def print_report(results: Sequence[ScenarioResult], collector: Sequence[str], repeat: int) -> None:
    print(f"\nMedian CPU per probe over {repeat} run(s); peak RSS is the largest seen.\n")
    print(table(results))
    print("\nPer run:")
    print("\n".join(per_run_lines(results)))
    print_list("Anomalies", problems_report(results, collector), "none")
    print_list("TARGETS MISSED", missed_targets(results), "none, all targets met")


def print_list(title: str, items: Sequence[str], empty: str) -> None:
    print(f"\n{title}: {empty}" if not items else f"\n{title}:")
    for item in items:
        print(f"- {item}")


if __name__ == "__main__":
    sys.exit(main())
