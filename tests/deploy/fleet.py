"""A slawatch fleet deployed with the Ansible collection onto real systemd machines.

The controller side is what an operator has: a wheelhouse built by
deploy/ansible/scripts/build-wheelhouse, an Ansible inventory, and
`ansible-playbook slawatch.slawatch.site` over SSH. The machine side is read
only for assertions (systemctl, /proc, the collector's store), never changed.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.machines import Fleet, Machine

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "deploy" / "ansible"
BIN = Path(sys.executable).parent
PLAY_TIMEOUT = 600.0
VERSION = "0.1.0"
UPGRADE_VERSION = "0.1.1"
# The agents' audit files: inside their StateDirectory, the only place they may write.
AUDIT_FILE = "/var/lib/slawatch-agent/audit.log"
COLLECTOR_DB = "/var/lib/slawatch-collector/collector.db"

_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


@dataclass(frozen=True)
class PlayResult:
    returncode: int
    output: str
    recap: dict[str, dict[str, int]]

    def changed(self) -> dict[str, int]:
        return {host: counts["changed"] for host, counts in self.recap.items()}

    def assert_ok(self) -> None:
        failed = {h: c for h, c in self.recap.items() if c["failed"] or c["unreachable"]}
        tail = self.output[-6000:]
        assert self.returncode == 0, f"ansible-playbook exit {self.returncode}\n{tail}"
        assert not failed, f"failed or unreachable: {failed}\n{tail}"


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    recap: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        match = _RECAP.match(line) if in_recap else None
        if match:
            host, ok, changed, unreachable, failed = match.groups()
            recap[host] = {"ok": int(ok), "changed": int(changed),
                           "unreachable": int(unreachable), "failed": int(failed)}  # fmt: skip
    return recap


def build_wheelhouse(out: Path, work: Path) -> None:
    """Wheels of this checkout as VERSION and, from a copy with the version bumped, as
    UPGRADE_VERSION, with every dependency: what an operator builds for air-gapped hosts."""
    env = {**os.environ, "PYTHON": str(BIN / "python")}
    script = str(COLLECTION / "scripts" / "build-wheelhouse")
    subprocess.run([script, str(out)], check=True, env=env, timeout=PLAY_TIMEOUT,
                   capture_output=True)  # fmt: skip
    bumped = work / "source-upgrade"
    listing = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]
    files = subprocess.run(listing, cwd=REPO, check=True, capture_output=True,
                           text=True).stdout.split()  # fmt: skip
    for name in files:
        if (REPO / name).is_file():
            (bumped / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, bumped / name)
    for name in ("pyproject.toml", "agent/__init__.py", "collector/__init__.py"):
        path = bumped / name
        path.write_text(path.read_text().replace(f'"{VERSION}"', f'"{UPGRADE_VERSION}"', 1))
    # Its dependencies are in the wheelhouse already: only slawatch's own wheel is new.
    subprocess.run([str(BIN / "python"), "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(out), str(bumped)], check=True, timeout=PLAY_TIMEOUT,
                   capture_output=True)  # fmt: skip


def slawatch_inventory(extra_check: bool = False) -> dict[str, Any]:
    """The collector's inventory: three nodes, agents pinging each other every 2 s."""
    ping = {"kind": "icmp", "interval": 2, "packets": 5, "spacing": 0.1, "timeout": 1}
    checks_b: list[dict[str, Any]] = [{"id": "ping-a", "target": "${node:agent-a}", **ping}]
    if extra_check:
        checks_b.append({"id": "tcp-collector", "kind": "tcp", "interval": 2, "timeout": 1,
                         "target": "${node-host:collector}:4317"})  # fmt: skip
    return {
        "sites": [{"id": "lab", "segments": [{"id": "lab-a", "nodes": [
            {"id": "collector", "address": "198.19.77.10", "role": "server"},
            {"id": "agent-a", "address": "198.19.77.11", "agent": "agent-a", "role": "server"},
            {"id": "agent-b", "address": "198.19.77.12", "agent": "agent-b", "role": "server"},
        ]}]}],
        "services": [{"id": "agent-b-node", "node": "agent-b", "owner": "provider",
                      "contract": "closte-service-item"}],
        "agents": {
            "agent-a": {"checks": [{"id": "ping-b", "target": "${node:agent-b}",
                                    "service": "agent-b-node", **ping}]},
            "agent-b": {"checks": checks_b},
        },
    }  # fmt: skip


class Deployment:
    """The operator's side: inventory, ansible.cfg and playbook runs."""

    def __init__(self, fleet: Fleet, machines: dict[str, Machine], work: Path,
                 wheelhouse: Path) -> None:  # fmt: skip
        self.fleet = fleet
        self.machines = machines
        self.work = work
        self.wheelhouse = wheelhouse
        collections = work / "collections" / "ansible_collections" / "slawatch"
        collections.mkdir(parents=True)
        (collections / "slawatch").symlink_to(COLLECTION)
        self.config = work / "ansible.cfg"
        self.config.write_text(
            "[defaults]\n"
            f"collections_path = {work / 'collections'}\n"
            f"private_key_file = {fleet.ssh_key}\n"
            "remote_user = ops\nhost_key_checking = False\n"
            "interpreter_python = /usr/bin/python3\nforks = 3\ntimeout = 30\n"
            "[ssh_connection]\npipelining = True\n"
            f"control_path_dir = {work / 'cp'}\n"
            "ssh_args = -o ControlMaster=auto -o ControlPersist=120s "
            "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no\n"
        )
        self.settings: dict[str, Any] = {
            "version": VERSION, "inventory": slawatch_inventory(), "revoked": [],
            "agents": ["agent-a", "agent-b"],
        }  # fmt: skip

    def write_inventory(self) -> Path:
        s = self.settings
        agents = {name: {"ansible_host": self.machines[name].address} for name in s["agents"]}
        hosts = {"all": {
            "children": {
                "slawatch_collectors": {"hosts": {"collector": {
                    "ansible_host": self.machines["collector"].address}}},
                "slawatch_agents": {"hosts": agents},
            },
            "vars": {
                "slawatch_install_version": s["version"],
                "slawatch_install_wheelhouse": str(self.wheelhouse),
                "slawatch_agent_audit_file": AUDIT_FILE,
                "slawatch_collector_inventory": copy.deepcopy(s["inventory"]),
                "slawatch_collector_revoked_agents": list(s["revoked"]),
            },
        }}  # fmt: skip
        path = self.work / "hosts.yml"
        path.write_text(yaml.safe_dump(hosts, sort_keys=False))
        return path

    def play(self, *options: str) -> PlayResult:
        inventory = self.write_inventory()
        argv = self.fleet.controller_argv([str(BIN / "ansible-playbook"), "-i", str(inventory),
                                           "slawatch.slawatch.site", *options])  # fmt: skip
        path = f"{BIN}:{os.environ.get('PATH', '')}"
        env = {**os.environ, "ANSIBLE_CONFIG": str(self.config), "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_FORCE_COLOR": "0", "PATH": path}  # fmt: skip
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=PLAY_TIMEOUT)
        output = done.stdout + done.stderr
        took = time.monotonic() - started
        with (self.work / "plays.log").open("a") as log:
            log.write(f"==== play {' '.join(options)}: {took:.1f} s\n{output}\n")
        return PlayResult(done.returncode, output, parse_recap(done.stdout))

    def query(self, sql: str) -> list[list[Any]]:
        """Rows from the collector's store, read inside the collector machine (read-only)."""
        script = (
            "import json, sqlite3, sys\n"
            f"c = sqlite3.connect('file:{COLLECTOR_DB}?mode=ro', uri=True)\n"
            "print(json.dumps(c.execute(sys.argv[1]).fetchall()))\n"
        )
        out = self.machines["collector"].run(["/usr/bin/python3", "-c", script, sql])
        rows: list[list[Any]] = json.loads(out)
        return rows

    def produced(self, agent: str) -> set[tuple[str, str, int]]:
        """(agent, check, start ns) of every observation the agent spooled (its audit file)."""
        path = self.machines[agent].root / AUDIT_FILE.lstrip("/")
        rows = set()
        for line in path.read_text().splitlines():
            _epoch, _sequence, check, start = line.split("\t")
            rows.add((agent, check, int(start)))
        return rows

    def stored(self) -> set[tuple[str, str, int]]:
        rows = self.query("SELECT agent_id, check_id, start_ns FROM observations")
        return {(str(a), str(c), int(s)) for a, c, s in rows}
