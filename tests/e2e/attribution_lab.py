"""The attribution lab: a provider's network with real agents, a real collector, and
faults injected at known times, so that verdicts can be compared with the truth (issue 7).

            out              outside vantage (agent "outside"), site "internet"
             |
          carrier            the upstream carrier, beyond the egress hop
             |
           egress            the egress hop: first router of the egress provider
             |
           border ---------- noc (the collector, `run --inventory`)
           /    \\
        swa      swb         the switches of segments seg-a and seg-b
       /   \\     /   \\
     hv1   a2  srv    b2     hv1: a hypervisor (forwards for vm1); srv: nginx -> shopapp
      |
     vm1                     a VM on hv1: no agent, answers ping

    lab = AttributionLab(tmp_dir)
    lab.start()                         # topology, collector, servers, agents streaming
    lab.cut_segment_a(); ...; lab.restore_segment_a()
    fault = lab.faults.last("segment-a-cut")       # start_ns, end_ns
    lab.store.observations("hv1-icmp-outside", fault.start_ns, fault.end_ns, whole=True)
    lab.close()                         # always: processes, namespaces, the tmpfs

Every agent node is a *machine*: its network namespace plus a PID and mount
namespace of its own, with /proc mounted for it. Its host check then sees its
own processes only (nginx stopped on srv is missing on srv, whatever runs
elsewhere on this computer), and stopping the machine is killing its init.

Agents get every check by push from the inventory the lab writes
(``lab.inventory_path``); each check id is unique in the lab, so a check id
names one series. Routes are static: each router has a route to every link's
/24 via its neighbour toward it; hosts route everything through their router.
Addresses are IPv4 only, from netlab's pool (198.18.0.0/16): nothing here
sends traffic outside the lab's namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from tests.conftest import AGENT_CMD
from tests.e2e.helpers import run_collector, tail, wait_for
from tests.lab.netlab import Host, Lab, LabError, lab_unavailable_reason
from tests.lab.servers import AppServer, NginxServer, start_app_server, start_nginx
from tests.lab.servers import unavailable_reason as servers_unavailable_reason

# -- the measurement plan -------------------------------------------------------

# Every check but egress_loss runs every 2 s and gives up after 1 s (HTTP after
# 1.5 s: a lost SYN or SYN-ACK is resent after 1 s, and a 3% loss fault must not
# fail an HTTP round that merely needed that resend).
CHECK_INTERVAL = 2.0
CHECK_TIMEOUT = 1.0
HTTP_TIMEOUT = 1.5
# Three echoes per ICMP round, any answer makes it ok: 3% loss does not fail
# rounds (0.03^3), a cut fails every one.
ICMP_PACKETS = 3
ICMP_SPACING = 0.2
# One egress window of 1,500 echoes in 7.5 s every 10 s, to the egress hop, the
# carrier beyond it and the border. At 3% loss a window is `excess` except with
# probability 1e-4; at 0% it is `clear` (0 of 1,500 gives an upper bound of 0.26%).
EGRESS_INTERVAL = 10.0
EGRESS_PACKETS = 1500
EGRESS_SPACING = 0.005
# srv's disk for the disk-full fault: a tmpfs this small fills in a millisecond.
DISK_BYTES = 4 << 20
SHOPAPP = "shopapp"
SHOPAPP_PORT = 8080
OWNER = "acme"
CONTRACT = "closte"

ROUTERS = ("carrier", "egress", "border", "swa", "swb", "hv1")
PLAIN_HOSTS = ("out", "noc", "a2", "srv", "b2", "vm1")
# node id -> agent id, for every node with an agent (the machines).
AGENTS = {"out": "outside", "hv1": "hv1", "a2": "a2", "srv": "srv", "b2": "b2"}

# Fault names in FaultLog.
SEGMENT_A_CUT = "segment-a-cut"
SRV_DOWN = "srv-down"
NGINX_DOWN = "nginx-down"
SHOPAPP_DOWN = "shopapp-down"
DISK_FULL = "disk-full"
EGRESS_LOSS = "egress-loss"
UPSTREAM_LOSS = "upstream-loss"
HV1_DOWN = "hv1-down"
B2_PARTITION = "b2-partition"

# A machine's init: PID 1 of its PID namespace. It only reaps orphans, so that a
# killed server never lingers as a zombie that a process check would still count.
_INIT = """
import os, signal
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
while True:
    signal.sigwait({signal.SIGCHLD})
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
"""
READY_TIMEOUT = 30.0
# srv's disk is a tmpfs named after the test process, so that one left by a
# process that died before its teardown can be found and unmounted.
DISK_SOURCE = "slawatch-lab-"


def lab_unavailable() -> str | None:
    """Why the attribution lab cannot run here, or None."""
    reason = lab_unavailable_reason() or servers_unavailable_reason("nginx")
    if reason is not None:
        return reason
    for tool in ("unshare", "nsenter", "umount"):
        if shutil.which(tool) is None:
            return f"the attribution lab needs `{tool}` (util-linux)"
    return None


def unmount_stale_disks() -> list[str]:
    """Unmount srv disks whose test process is gone; the mount points unmounted."""
    unmounted = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        source, mount_point = line.split()[:2]
        owner = source.removeprefix(DISK_SOURCE)
        if (
            source.startswith(DISK_SOURCE)
            and owner.isdigit()
            and not Path(f"/proc/{owner}").exists()
        ):
            subprocess.run(["umount", "--lazy", mount_point], capture_output=True, timeout=10)
            unmounted.append(mount_point)
    return unmounted


# -- the inventory --------------------------------------------------------------


def _node(placeholder_id: str) -> str:
    return "${node:" + placeholder_id + "}"


def _icmp(check_id: str, target: str, service: str) -> dict[str, Any]:
    return {"id": check_id, "kind": "icmp", "target": _node(target), "service": service,
            "interval": CHECK_INTERVAL, "timeout": CHECK_TIMEOUT,
            "packets": ICMP_PACKETS, "spacing": ICMP_SPACING}  # fmt: skip


def _web(check_id: str) -> dict[str, Any]:
    return {"id": check_id, "kind": "http", "target": "http://${node-host:srv}/",
            "service": "web", "interval": CHECK_INTERVAL, "timeout": HTTP_TIMEOUT}  # fmt: skip


def _host(check_id: str, **options: Any) -> dict[str, Any]:
    check = {"id": check_id, "kind": "host", "target": "localhost",
             "interval": CHECK_INTERVAL, "timeout": CHECK_TIMEOUT}  # fmt: skip
    if options:
        check["host"] = options
    return check


def _egress(check_id: str) -> dict[str, Any]:
    return {"id": check_id, "kind": "egress_loss", "target": _node("egress"),
            "interval": EGRESS_INTERVAL, "timeout": CHECK_TIMEOUT,
            "packets": EGRESS_PACKETS, "spacing": EGRESS_SPACING,
            "egress_loss": {"threshold": 0.01, "border": _node("border"),
                            "beyond": _node("carrier")}}  # fmt: skip


def lab_checks(disk_mount: str) -> dict[str, list[dict[str, Any]]]:
    """Each agent's checks, as the inventory writes them (placeholders, ``service:``)."""
    return {
        "outside": [
            _web("web-outside"),
            _icmp("srv-icmp-outside", "srv", "srv-node"),
            _icmp("b2-icmp-outside", "b2", "b2-node"),
            _icmp("hv1-icmp-outside", "hv1", "hv1-node"),
            _icmp("a2-icmp-outside", "a2", "a2-node"),
            _icmp("vm1-icmp-outside", "vm1", "vm1-node"),
            _host("host-outside"),
        ],
        "hv1": [
            _icmp("vm1-icmp-hv1", "vm1", "vm1-node"),
            _icmp("a2-icmp-hv1", "a2", "a2-node"),
            _host("host-hv1"),
            _egress("egress-hv1"),
        ],
        "a2": [_icmp("hv1-icmp-a2", "hv1", "hv1-node"), _host("host-a2")],
        "srv": [
            _web("web-local"),
            _icmp("b2-icmp-srv", "b2", "b2-node"),
            _host("host-srv", processes=["nginx", SHOPAPP], mounts=["/", disk_mount]),
            _egress("egress-srv"),
        ],
        "b2": [_web("web-b2"), _icmp("srv-icmp-b2", "srv", "srv-node"), _host("host-b2")],
    }


# What each node is, for the topology keys: (role, parent, customer processes).
_ROLES: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "hv1": ("hypervisor", None, ()),
    "vm1": ("vm", "hv1", ()),
    "a2": ("server", None, ()),
    "srv": ("server", None, (SHOPAPP,)),
    "b2": ("server", None, ()),
    "border": ("router", None, ()),
    "egress": ("router", None, ()),
    "carrier": ("router", None, ()),
    "out": ("outside", None, ()),
}
# site -> segment -> nodes, and each provider segment's border and egress hop.
_LAYOUT: dict[str, dict[str, tuple[str, ...]]] = {
    "lab": {"seg-a": ("hv1", "vm1", "a2"), "seg-b": ("srv", "b2"),
            "edge": ("border", "egress", "carrier")},
    "internet": {"internet": ("out",)},
}  # fmt: skip
_SEGMENT_EDGES = {"seg-a": ("border", "egress"), "seg-b": ("border", "egress")}
SERVICES = {  # service item -> its node
    "web": "srv",
    "srv-node": "srv",
    "b2-node": "b2",
    "hv1-node": "hv1",
    "a2-node": "a2",
    "vm1-node": "vm1",
}


def lab_inventory(addresses: Mapping[str, str], disk_mount: str) -> dict[str, Any]:
    """The inventory of the lab, for ``addresses`` (node id -> IPv4 address): with each
    node's role, a VM's parent, srv's customer process, and each provider segment's
    border router and egress hop."""

    def node(node_id: str) -> dict[str, Any]:
        role, parent, processes = _ROLES[node_id]
        entry: dict[str, Any] = {"id": node_id, "address": addresses[node_id], "role": role}
        if node_id in AGENTS:
            entry["agent"] = AGENTS[node_id]
        if parent:
            entry["parent"] = parent
        if processes:
            entry["customer_processes"] = list(processes)
        return entry

    def segment(segment_id: str, nodes: Sequence[str]) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": segment_id, "nodes": [node(n) for n in nodes]}
        if segment_id in _SEGMENT_EDGES:
            entry["border"], entry["egress"] = _SEGMENT_EDGES[segment_id]
        return entry

    return {
        "sites": [
            {"id": site, "segments": [segment(s, nodes) for s, nodes in segments.items()]}
            for site, segments in _LAYOUT.items()
        ],
        "services": [
            {"id": item, "node": node_id, "owner": OWNER, "contract": CONTRACT}
            for item, node_id in SERVICES.items()
        ],
        "agents": {agent: {"checks": checks} for agent, checks in lab_checks(disk_mount).items()},
    }


# -- faults: what was done, and when ---------------------------------------------


@dataclass
class Fault:
    """One injected fault: surely in effect from ``start_ns`` (the injection had
    completed) to ``end_ns`` (the repair began), or still on.

    The commands take time (milliseconds; starting srv or hv1 about 0.1 s), so the
    fault really began between ``injecting_ns`` and ``start_ns`` and really ended
    between ``end_ns`` and ``repaired_ns``: whatever happened wholly inside
    ``[start_ns, end_ns)`` happened under the fault.
    """

    name: str
    injecting_ns: int
    start_ns: int
    end_ns: int | None = None
    repaired_ns: int | None = None
    detail: str = ""

    @property
    def seconds(self) -> float:
        end = self.end_ns if self.end_ns is not None else time.time_ns()
        return (end - self.start_ns) / 1e9

    def closed(self) -> tuple[int, int]:
        """(start_ns, end_ns) of a fault that is over."""
        if self.end_ns is None:
            raise AssertionError(f"fault {self.name} is still on")
        return self.start_ns, self.end_ns


@dataclass
class FaultLog:
    records: list[Fault] = field(default_factory=list)

    def active(self, name: str) -> Fault | None:
        for fault in reversed(self.records):
            if fault.name == name and fault.end_ns is None:
                return fault
        return None

    def begin(self, name: str, injecting_ns: int, detail: str = "") -> Fault:
        fault = Fault(name, injecting_ns, time.time_ns(), detail=detail)
        self.records.append(fault)
        return fault

    def end(self, name: str, repairing_ns: int) -> Fault | None:
        fault = self.active(name)
        if fault is not None:
            fault.end_ns, fault.repaired_ns = repairing_ns, time.time_ns()
        return fault

    def last(self, name: str) -> Fault:
        for fault in reversed(self.records):
            if fault.name == name:
                return fault
        raise KeyError(f"no fault {name!r} was injected")

    def all(self, name: str) -> list[Fault]:
        return [fault for fault in self.records if fault.name == name]


# -- what the collector stored ---------------------------------------------------


@dataclass(frozen=True)
class StoredRound:
    agent_id: str
    check_id: str
    start_ns: int
    duration_ns: int
    outcome: str
    error_class: str
    error_detail: str
    packets_sent: int
    packets_received: int
    received_ns: int  # when the collector stored the batch that carried it
    detail: dict[str, Any]

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns

    @property
    def verdict(self) -> str:
        """An egress_loss round's verdict: clear, excess, undecided or rate_limited."""
        raw = str(self.detail.get("egress_loss", {}).get("verdict", "VERDICT_UNSPECIFIED"))
        return raw.removeprefix("VERDICT_").lower()

    @property
    def findings(self) -> set[tuple[str, str]]:
        """A host round's findings: (kind, subject), e.g. ``("disk_full", "/mnt")``."""
        return {
            (str(f.get("kind", "")).removeprefix("KIND_").lower(), str(f.get("subject", "")))
            for f in self.detail.get("host", {}).get("findings", [])
        }


def _stored_round(row: tuple[Any, ...]) -> StoredRound:
    agent, check, start, duration, outcome, error, detail, sent, received, stored, raw = row
    return StoredRound(agent, check, start, duration, outcome, error, detail, sent, received,
                       stored, json.loads(raw or "{}"))  # fmt: skip


class LabStore:
    """Read-only queries on the collector's SQLite store (it may be writing meanwhile)."""

    def __init__(self, db: Path) -> None:
        self.db = db

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        if not self.db.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as conn:
            try:
                return conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError:
                return []  # not created yet, or busy: the caller polls

    def observations(
        self,
        check_id: str,
        since_ns: int = 0,
        until_ns: int = 2**63 - 1,
        whole: bool = False,
    ) -> list[StoredRound]:
        """Rounds of ``check_id`` that started in ``[since_ns, until_ns)``; with ``whole``,
        only rounds that also ended by ``until_ns`` (wholly inside the interval)."""
        rows = self.query(
            "SELECT o.agent_id, o.check_id, o.start_ns, o.duration_ns, o.outcome, "
            "o.error_class, o.error_detail, o.packets_sent, o.packets_received, "
            "b.received_ns, o.detail_json FROM observations o JOIN batches b "
            "ON b.agent_id = o.agent_id AND b.sequence_epoch = o.sequence_epoch "
            "AND b.sequence = o.sequence "
            "WHERE o.check_id = ? AND o.start_ns >= ? AND o.start_ns < ? ORDER BY o.start_ns",
            check_id, since_ns, until_ns,
        )  # fmt: skip
        rounds = [_stored_round(row) for row in rows]
        return [r for r in rounds if not whole or r.end_ns <= until_ns]

    def outcomes(
        self, check_id: str, since_ns: int = 0, until_ns: int = 2**63 - 1, whole: bool = False
    ) -> Counter[tuple[str, str]]:
        """How many rounds ended how: ``{("ok", "none"): 5, ("timeout", "echo_timeout"): 3}``."""
        return Counter(
            (r.outcome, r.error_class)
            for r in self.observations(check_id, since_ns, until_ns, whole)
        )

    def rounds_after(self, check_id: str, ns: int) -> int:
        rows = self.query(
            "SELECT count(*) FROM observations WHERE check_id = ? AND start_ns >= ?", check_id, ns
        )
        return int(rows[0][0]) if rows else 0

    def agent_rounds(self, agent_id: str, since_ns: int, until_ns: int) -> int:
        """Rounds of any check of the agent that started in ``[since_ns, until_ns)``."""
        rows = self.query(
            "SELECT count(*) FROM observations WHERE agent_id = ? AND start_ns >= ? "
            "AND start_ns < ?",
            agent_id, since_ns, until_ns,
        )  # fmt: skip
        return int(rows[0][0]) if rows else 0

    def streaming_agents(self, since_ns: int) -> set[str]:
        """Agents whose batches the collector stored after ``since_ns``."""
        rows = self.query("SELECT DISTINCT agent_id FROM batches WHERE received_ns > ?", since_ns)
        return {str(row[0]) for row in rows}

    def accepted_config(self, agent_id: str) -> bool:
        """Whether the agent's latest answer to a push is an acceptance."""
        rows = self.query(
            "SELECT accepted FROM config_status WHERE agent_id = ? "
            "ORDER BY received_ns DESC LIMIT 1",
            agent_id,
        )
        return bool(rows and rows[0][0])

    def coverage(self, agent_id: str) -> list[tuple[int, int]]:
        """The agent's coverage: disjoint ``[start_ns, end_ns)`` it vouches for."""
        rows = self.query(
            "SELECT start_ns, end_ns FROM coverage WHERE agent_id = ? ORDER BY start_ns", agent_id
        )
        return [(int(a), int(b)) for a, b in rows]

    def coverage_gaps(self, agent_id: str, since_ns: int, until_ns: int) -> list[tuple[int, int]]:
        """The parts of ``[since_ns, until_ns)`` the agent's coverage leaves out."""
        gaps, cursor = [], since_ns
        for start, end in self.coverage(agent_id):
            if end <= cursor:
                continue
            if start >= until_ns:
                break
            if start > cursor:
                gaps.append((cursor, start))
            cursor = max(cursor, end)
        if cursor < until_ns:
            gaps.append((cursor, until_ns))
        return gaps

    def heartbeats(self, agent_id: str, since_ns: int = 0) -> list[tuple[int, float, int]]:
        """(received_ns, agent CPU seconds, agent RSS bytes) of each heartbeat."""
        rows = self.query(
            "SELECT received_ns, agent_cpu_seconds, agent_rss_bytes FROM heartbeats "
            "WHERE agent_id = ? AND received_ns > ? ORDER BY received_ns",
            agent_id, since_ns,
        )  # fmt: skip
        return [(int(a), float(b), int(c)) for a, b, c in rows]


# -- machines: nodes with an agent -------------------------------------------------


@dataclass(eq=False)
class MachineHost(Host):
    """A lab host whose commands run inside the machine's PID and mount namespaces."""

    init_pid: int = 0

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        if not self.init_pid:
            raise LabError(f"machine {self.name} is not running")
        inner = ["nsenter", f"--target={self.init_pid}", "--pid", "--mount", "--", *argv]
        return super().exec_argv(inner)


@dataclass(eq=False)
class Machine:
    """A node with an agent: its namespace (``host``, as the topology knows it) and the
    machine inside it (``shell``: commands there see the machine's own processes)."""

    node: str
    agent_id: str
    host: Host
    shell: MachineHost
    directory: Path
    collector_address: str
    init: subprocess.Popen[bytes] | None = None
    agent: subprocess.Popen[bytes] | None = None
    boot_ids: list[str] = field(default_factory=list)

    @property
    def spool_dir(self) -> Path:
        return self.directory / "spool"

    @property
    def agent_log(self) -> Path:
        return self.directory / "agent.log"

    def boot(self) -> None:
        """Start the machine's init in a fresh PID namespace, with /proc of its own and a
        boot id of its own (``boot_ids``): each boot looks like a reboot to the agent."""
        self.init = self.host.spawn(
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
             sys.executable, "-S", "-c", _INIT],
            log_path=self.directory / "init.log", append=True,
        )  # fmt: skip
        self.shell.init_pid = wait_for(
            f"{self.node}'s init", lambda: _exec_child(self.init), timeout=10, every=0.02
        )
        boot_id = str(uuid.uuid4())
        path = self.directory / f"boot_id.{len(self.boot_ids)}"
        path.write_text(boot_id + "\n")
        self.shell.run(["mount", "--bind", str(path), "/proc/sys/kernel/random/boot_id"])
        self.boot_ids.append(boot_id)

    def start_agent(self) -> None:
        """Start the agent; it keeps its spool (and cached checks) across restarts."""
        config = {
            "agent_id": self.agent_id,
            "collector": {"address": self.collector_address, "insecure": True,
                          "flush_interval": 0.5, "heartbeat_interval": 2},
            "spool": {"dir": str(self.spool_dir)},
        }  # fmt: skip
        path = self.directory / "agent.yaml"
        path.write_text(yaml.safe_dump(config))
        self.agent = self.shell.spawn(
            [AGENT_CMD, "run", "--config", str(path)], log_path=self.agent_log, append=True
        )

    def halt(self) -> None:
        """Kill every process of the machine at once, as a power cut would."""
        _kill_namespace(self.host)
        for process in (self.init, self.agent):
            if process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
        self.shell.init_pid = 0
        self.init = self.agent = None


def _exec_child(init: subprocess.Popen[bytes] | None) -> int | None:
    """The PID (as seen from here) of unshare's child once it runs the init program."""
    if init is None or init.poll() is not None:
        raise LabError("a machine's init exited at start")
    try:
        children = Path(f"/proc/{init.pid}/task/{init.pid}/children").read_text().split()
        if not children:
            return None
        # After exec, /proc is the machine's own (unshare mounts it before exec).
        argv0 = Path(f"/proc/{children[0]}/cmdline").read_bytes().split(b"\0")[0]
        if argv0 != sys.executable.encode():
            return None
    except OSError:
        return None
    return int(children[0])


def _kill_namespace(host: Host, timeout: float = 5.0) -> None:
    """SIGKILL every process in the host's network namespace; wait until none is left."""

    def pids() -> list[int]:
        out = subprocess.run(
            ["ip", "netns", "pids", host.namespace], capture_output=True, text=True, timeout=10
        ).stdout
        return [int(pid) for pid in out.split()]

    deadline = time.monotonic() + timeout
    while (left := pids()) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    if left:
        raise LabError(f"processes {left} in {host.name} survived SIGKILL")


# -- the lab ------------------------------------------------------------------------


class AttributionLab:
    """The topology above, its collector and agents, srv's servers, and the faults.

    Each fault has an injector and a repair, both idempotent; each records a
    ``Fault`` in ``faults`` (name, start_ns, end_ns) when it takes effect and ends.
    """

    def __init__(self, directory: Path, collector_options: Sequence[str] = ()) -> None:
        """``collector_options`` go to `slawatch-collector run` after the lab's own
        (e.g. ``["--attribution-interval", "5"]``)."""
        self.directory = directory
        self.collector_options = list(collector_options)
        self.lab = Lab()
        self.faults = FaultLog()
        self.hosts: dict[str, Host] = {}
        self.machines: dict[str, Machine] = {}
        self.addresses: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self.db = directory / "collector.db"
        self.store = LabStore(self.db)
        self.inventory_path = directory / "inventory.yaml"
        self.disk = directory / "srv-disk"
        self.collector: subprocess.Popen[bytes] | None = None
        self.metrics_url = ""
        self.web: NginxServer | None = None
        self.shopapp: AppServer | None = None
        self._disk_mounted = False

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        """Build everything; return once every agent streams and took its checks."""
        began = time.monotonic()
        self._build_topology()
        self._mount_disk()
        self.timings["topology"] = time.monotonic() - began
        noc = self.hosts["noc"]
        self.inventory_path.write_text(
            yaml.safe_dump(lab_inventory(self.addresses, str(self.disk)), sort_keys=False)
        )
        self.metrics_url, self.collector = run_collector(
            noc, self.addresses["noc"], self.db, self.directory,
            ["--insecure", "--inventory", str(self.inventory_path), *self.collector_options],
        )  # fmt: skip
        for machine in self.machines.values():
            machine.boot()
        srv = self.machines["srv"].shell
        self.shopapp = start_app_server(srv, self.directory / "srv", process_name=SHOPAPP,
                                        port=SHOPAPP_PORT)  # fmt: skip
        self.web = start_nginx(
            srv, self.directory / "srv", None, address=self.addresses["srv"],
            upstream=f"127.0.0.1:{SHOPAPP_PORT}",
        )  # fmt: skip
        started_ns = time.time_ns()
        for machine in self.machines.values():
            machine.start_agent()
        self.wait_streaming(started_ns, READY_TIMEOUT)
        self.timings["start"] = time.monotonic() - began

    def wait_streaming(self, since_ns: int, timeout: float) -> None:
        """Until every agent took its pushed checks and sent results after ``since_ns``."""
        agents = set(AGENTS.values())

        def ready() -> bool:
            streaming = self.store.streaming_agents(since_ns)
            return agents <= streaming and all(self.store.accepted_config(a) for a in agents)

        try:
            wait_for("every agent streaming with its pushed checks", ready, timeout)
        except AssertionError as exc:
            missing = agents - self.store.streaming_agents(since_ns)
            logs = "\n".join(f"-- {m.agent_id}:\n{tail(m.agent_log, 15)}"
                             for m in self.machines.values() if m.agent_id in missing)  # fmt: skip
            raise AssertionError(f"{exc}; silent: {sorted(missing)}\n{logs}") from None

    def close(self) -> None:
        """Stop everything, delete the namespaces, unmount srv's disk; safe to call twice."""
        try:
            # Machines first, at once: their agents would spend seconds flushing to a
            # collector that is stopping too, and nothing they would send is needed.
            for machine in self.machines.values():
                with contextlib.suppress(LabError, OSError, subprocess.SubprocessError):
                    machine.halt()
            self.lab.close()
        finally:
            if self._disk_mounted:
                subprocess.run(["umount", "--lazy", str(self.disk)], capture_output=True)
                self._disk_mounted = False

    def __enter__(self) -> AttributionLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building ---------------------------------------------------------------

    def _build_topology(self) -> None:
        lab = self.lab
        for name in ROUTERS:
            self.hosts[name] = lab.router(name)
            # Routers answer every echo: egress-loss windows send hundreds a second.
            self.hosts[name].run(["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"])
        for name in PLAIN_HOSTS:
            self.hosts[name] = lab.host(name)
        h = self.hosts
        lab.attach(h["out"], h["carrier"])
        lab.link(h["carrier"], h["egress"])
        lab.link(h["egress"], h["border"])
        lab.attach(h["noc"], h["border"])
        lab.link(h["border"], h["swa"])
        lab.link(h["border"], h["swb"])
        lab.attach(h["hv1"], h["swa"])
        lab.attach(h["a2"], h["swa"])
        lab.attach(h["vm1"], h["hv1"])
        lab.attach(h["srv"], h["swb"])
        lab.attach(h["b2"], h["swb"])
        _static_routes(lab, [h[name] for name in ROUTERS])
        # A node's address is the one its own side reaches it by; a router's is its
        # address toward the inside (what a trace from the segments shows).
        toward = {"out": "carrier", "noc": "border", "carrier": "egress", "egress": "border",
                  "border": "egress", "hv1": "swa", "a2": "swa", "vm1": "hv1", "srv": "swb",
                  "b2": "swb"}  # fmt: skip
        self.addresses = {node: h[node].address_toward(h[peer]) for node, peer in toward.items()}
        collector_address = f"{self.addresses['noc']}:4317"
        for node, agent_id in AGENTS.items():
            host = h[node]
            directory = self.directory / node
            directory.mkdir(parents=True, exist_ok=True)
            shell = MachineHost(self.lab, host.name, host.namespace, host.router,
                                host.addresses, host.addresses6)  # fmt: skip
            self.machines[node] = Machine(node, agent_id, host, shell, directory, collector_address)

    def _mount_disk(self) -> None:
        """srv's data disk: a tmpfs, mounted before any machine starts so each sees it."""
        self.disk.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700",
             f"{DISK_SOURCE}{os.getpid()}", str(self.disk)],
            check=True, capture_output=True, timeout=10,
        )  # fmt: skip
        self._disk_mounted = True

    # -- faults -----------------------------------------------------------------

    def _inject(self, name: str, action: Callable[[], None], detail: str = "") -> Fault:
        """Do ``action`` and open a record, unless the fault is already on."""
        fault = self.faults.active(name)
        if fault is not None:
            return fault
        injecting_ns = time.time_ns()
        action()
        return self.faults.begin(name, injecting_ns, detail)

    def _repair(self, name: str, action: Callable[[], None]) -> Fault | None:
        """Do ``action`` if the fault is on, and close its record."""
        if self.faults.active(name) is None:
            return None
        repairing_ns = time.time_ns()
        action()
        return self.faults.end(name, repairing_ns)

    def cut_segment_a(self) -> Fault:
        """Segment A's uplink (border <-> swa) cut both ways: hv1, vm1 and a2 are cut
        off from everything outside the segment, the collector included."""
        return self._inject(SEGMENT_A_CUT, lambda: self._cut("border", "swa"))

    def restore_segment_a(self) -> Fault | None:
        return self._repair(SEGMENT_A_CUT, lambda: self._restore("border", "swa"))

    def stop_srv(self) -> Fault:
        """Host down: srv's link cut, and every process on it (agent, nginx, shopapp) killed."""

        def stop() -> None:
            self._cut("swb", "srv")
            self.machines["srv"].halt()

        return self._inject(SRV_DOWN, stop)

    def start_srv(self) -> Fault | None:
        """srv boots: shopapp and nginx behind the still cut link; then the link comes
        back (the fault's end) and the agent starts, with its spool and cached checks.
        The agent starts last because a connect into a cut link waits 20 s to fail."""
        if self.faults.active(SRV_DOWN) is None:
            return None
        self.machines["srv"].boot()
        self._shopapp().start()
        self._web().start()
        fault = self._repair(SRV_DOWN, lambda: self._restore("swb", "srv"))
        self.machines["srv"].start_agent()
        return fault

    def stop_nginx(self) -> Fault:
        return self._inject(NGINX_DOWN, lambda: self._web().stop(graceful=False))

    def start_nginx(self) -> Fault | None:
        return self._repair(NGINX_DOWN, lambda: self._web().start())

    def stop_shopapp(self) -> Fault:
        """The customer's application stops; nginx in front of it answers 502."""
        return self._inject(SHOPAPP_DOWN, lambda: self._shopapp().stop(graceful=False))

    def start_shopapp(self) -> Fault | None:
        return self._repair(SHOPAPP_DOWN, lambda: self._shopapp().start())

    def fill_disk(self) -> Fault:
        """srv's data disk filled to the last 64 KiB (over the host check's 95%)."""

        def fill() -> None:
            free = shutil.disk_usage(self.disk).free
            with (self.disk / "ballast").open("wb") as out:
                out.write(b"\0" * max(0, free - (64 << 10)))

        return self._inject(DISK_FULL, fill)

    def free_disk(self) -> Fault | None:
        return self._repair(DISK_FULL, lambda: (self.disk / "ballast").unlink(missing_ok=True))

    def set_egress_loss(self, percent: float) -> Fault | None:
        """Random loss on border -> egress (every echo toward the egress hop and beyond
        crosses it); 0 repairs. Recorded as one fault while above 0."""
        return self._set_loss(EGRESS_LOSS, "border", "egress", percent)

    def set_upstream_loss(self, percent: float) -> Fault | None:
        """Random loss on egress -> carrier: beyond the egress hop; 0 repairs."""
        return self._set_loss(UPSTREAM_LOSS, "egress", "carrier", percent)

    def _set_loss(self, name: str, sender: str, receiver: str, percent: float) -> Fault | None:
        def apply() -> None:
            self.lab.set_loss(self.hosts[sender], self.hosts[receiver], percent)

        if percent <= 0:
            return self._repair(name, apply)
        active = self.faults.active(name)
        if active is not None and active.detail != f"{percent}%":
            self._repair(name, apply)  # another ratio: a fault of its own
        return self._inject(name, apply, detail=f"{percent}%")

    def stop_hv1(self) -> Fault:
        """The hypervisor stops: its agent killed, its links to swa and vm1 cut. vm1
        (a namespace of its own) keeps running, unreachable."""

        def stop() -> None:
            self._cut("swa", "hv1")
            self._cut("hv1", "vm1")
            self.machines["hv1"].halt()

        return self._inject(HV1_DOWN, stop)

    def start_hv1(self) -> Fault | None:
        """hv1 boots behind its cut links; the links come back (the fault's end); its
        agent starts."""
        if self.faults.active(HV1_DOWN) is None:
            return None
        self.machines["hv1"].boot()

        def reconnect() -> None:
            self._restore("swa", "hv1")
            self._restore("hv1", "vm1")

        fault = self._repair(HV1_DOWN, reconnect)
        self.machines["hv1"].start_agent()
        return fault

    def partition_b2(self) -> Fault:
        """b2 and the collector cannot reach each other (the border drops their packets
        both ways); b2 reaches and is reached by everything else."""
        b2, noc = self.addresses["b2"], self.addresses["noc"]
        script = "\n".join([
            "add table inet partition",
            "add chain inet partition forward { type filter hook forward priority 0; }",
            "flush chain inet partition forward",
            f"add rule inet partition forward ip saddr {b2} ip daddr {noc} counter drop",
            f"add rule inet partition forward ip saddr {noc} ip daddr {b2} counter drop",
        ])  # fmt: skip
        return self._inject(B2_PARTITION, lambda: self._nft("border", script))

    def heal_b2(self) -> Fault | None:
        script = "add table inet partition\ndelete table inet partition"
        return self._repair(B2_PARTITION, lambda: self._nft("border", script))

    def repair_all(self) -> list[Fault]:
        """Repair every fault that is on (a test that failed halfway leaves the lab
        healthy for the next); the faults repaired."""
        repairs: dict[str, Callable[[], Fault | None]] = {
            SEGMENT_A_CUT: self.restore_segment_a,
            SRV_DOWN: self.start_srv,
            HV1_DOWN: self.start_hv1,
            NGINX_DOWN: self.start_nginx,
            SHOPAPP_DOWN: self.start_shopapp,
            DISK_FULL: self.free_disk,
            EGRESS_LOSS: lambda: self.set_egress_loss(0),
            UPSTREAM_LOSS: lambda: self.set_upstream_loss(0),
            B2_PARTITION: self.heal_b2,
        }
        repaired = [repairs[name]() for name in repairs if self.faults.active(name)]
        return [fault for fault in repaired if fault is not None]

    def _cut(self, a: str, b: str) -> None:
        self.lab.cut(self.hosts[a], self.hosts[b])

    def _restore(self, a: str, b: str) -> None:
        self.lab.restore(self.hosts[a], self.hosts[b])

    def _nft(self, host: str, script: str) -> None:
        done = subprocess.run(
            self.hosts[host].exec_argv(["nft", "-f", "-"]),
            input=script + "\n", capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        if done.returncode != 0:
            raise LabError(f"nft in {host}: {done.stderr.strip()}")

    def _web(self) -> NginxServer:
        if self.web is None:
            raise LabError("the lab is not started")
        return self.web

    def _shopapp(self) -> AppServer:
        if self.shopapp is None:
            raise LabError("the lab is not started")
        return self.shopapp

    # -- waiting and measuring ---------------------------------------------------

    def wait_rounds_after(
        self, check_id: str, ns: int, count: int = 1, timeout: float = 30
    ) -> None:
        """Until ``count`` rounds of the check that started at or after ``ns`` are stored."""
        wait_for(
            f"{count} rounds of {check_id} after {ns}",
            lambda: self.store.rounds_after(check_id, ns) >= count,
            timeout,
        )

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) used so far by the processes of each host."""
        used: dict[str, float] = {}
        for name, host in self.hosts.items():
            out = subprocess.run(
                ["ip", "netns", "pids", host.namespace], capture_output=True, text=True
            ).stdout
            total = 0.0
            for pid in out.split():
                with contextlib.suppress(psutil.Error):
                    times = psutil.Process(int(pid)).cpu_times()
                    total += times.user + times.system
            used[name] = total
        return used


def _static_routes(lab: Lab, routers: Sequence[Host]) -> None:
    """Give each router a route to every link's network it is not on, via the
    neighbour toward it (the lab is a tree: one path to everything)."""
    neighbours: dict[str, list[Host]] = {}
    for link in lab.links:
        neighbours.setdefault(link.a.name, []).append(link.b)
        neighbours.setdefault(link.b.name, []).append(link.a)
    for router in routers:
        first_hop: dict[str, tuple[Host, int]] = {}  # host -> (neighbour toward it, hops)
        queue: deque[Host] = deque()
        for neighbour in neighbours[router.name]:
            first_hop[neighbour.name] = (neighbour, 1)
            queue.append(neighbour)
        while queue:
            current = queue.popleft()
            via, hops = first_hop[current.name]
            for nxt in neighbours[current.name]:
                if nxt.name != router.name and nxt.name not in first_hop:
                    first_hop[nxt.name] = (via, hops + 1)
                    queue.append(nxt)
        commands = []
        for link in lab.links:
            if router in (link.a, link.b):
                continue
            nearer = min((link.a, link.b), key=lambda end: first_hop[end.name][1])
            via = first_hop[nearer.name][0]
            commands.append(f"route replace {link.network} via {via.address_toward(router)}")
        done = subprocess.run(
            router.exec_argv(["ip", "-batch", "-"]), input="\n".join(commands) + "\n",
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        if done.returncode != 0:
            raise LabError(f"routes in {router.name}: {done.stderr.strip()}")


def describe_faults(faults: FaultLog, origin_ns: int) -> Iterator[str]:
    """One line per fault: name, start and end in seconds after ``origin_ns``, and how
    long the injection and the repair took (the uncertainty of each edge)."""
    for fault in faults.records:
        start = (fault.start_ns - origin_ns) / 1e9
        end = f"{(fault.end_ns - origin_ns) / 1e9:7.2f}" if fault.end_ns else "     on"
        injection_ms = (fault.start_ns - fault.injecting_ns) / 1e6
        repair_ms = (
            (fault.repaired_ns - fault.end_ns) / 1e6 if fault.end_ns and fault.repaired_ns else 0
        )
        yield (f"{fault.name:14} {fault.detail:3} {start:7.2f} -> {end} ({fault.seconds:4.1f} s; "
               f"injection {injection_ms:3.0f} ms, repair {repair_ms:3.0f} ms)")  # fmt: skip
