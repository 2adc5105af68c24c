"""Real systemd machines for deploy tests: Debian booted with systemd-nspawn.

    rootfs = debian_rootfs()                  # debootstrap once, cached outside the clone
    with Fleet(rootfs, tmp_path) as fleet:
        collector = fleet.boot("collector")    # 198.19.77.10, sshd on 22, user `ops`
        fleet.ssh_ok(collector)
        collector.run(["systemctl", "is-active", "ssh"])

Each machine is an overlay on the cached root filesystem (the cache is never
written), in a network namespace of its own joined to a bridge in a controller
namespace: Ansible runs in that namespace and reaches the machines over SSH as
an operator would (user `ops`, a key made for the run, sudo). The addresses,
198.19.77.0/24 (reserved for benchmarking), exist only inside these
namespaces. Closing the fleet powers the machines off, kills what is left,
unmounts the overlays and deletes the namespaces, also after a failed test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("SLAWATCH_ROOTFS_CACHE", "/var/cache/slawatch-test"))
# Bump when the package list or the preparation below changes: a new cache is made.
ROOTFS_NAME = "debian-bookworm-2"
MIRROR = os.environ.get("SLAWATCH_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-venv",
    "iproute2", "sudo", "procps",
]  # fmt: skip
NAME_PREFIX = "swdep-"
SUBNET = "198.19.77"
CONTROLLER_ADDRESS = f"{SUBNET}.1"
BOOT_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class MachineError(RuntimeError):
    """A machine could not be made, booted or reached; the message says which step."""


def machines_unavailable_reason() -> str | None:
    """Why real machines cannot be booted here, or None if they can."""
    if os.geteuid() != 0:
        return "booting systemd machines needs root (systemd-nspawn, namespaces, mounts)"
    for tool in ("systemd-nspawn", "debootstrap", "ip", "ssh", "ssh-keygen", "nsenter"):
        if shutil.which(tool) is None:
            return f"deploy tests need `{tool}` (scripts/setup --dev installs it)"
    return None


def _run(argv: Sequence[str], timeout: float = 60.0, check: bool = True) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise MachineError(f"{' '.join(argv)}: timed out after {timeout:.0f} s") from exc
    if check and done.returncode != 0:
        raise MachineError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def debian_rootfs() -> Path:
    """A Debian 12 root filesystem with sshd, Python and an operator `ops`, made once."""
    final = CACHE / ROOTFS_NAME
    if (final / ".slawatch-rootfs-complete").exists():
        return final
    CACHE.mkdir(parents=True, exist_ok=True)
    building = CACHE / f"{ROOTFS_NAME}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    _run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", "bookworm",
          str(building), MIRROR], timeout=900)  # fmt: skip
    chroot = ["chroot", str(building)]
    _run([*chroot, "useradd", "--create-home", "--shell", "/bin/bash", "ops"])
    (building / "etc/sudoers.d/ops").write_text("ops ALL=(ALL) NOPASSWD: ALL\n")
    (building / "etc/sudoers.d/ops").chmod(0o440)
    # Each machine takes its name from nspawn and makes its own machine id at boot.
    (building / "etc/hostname").unlink(missing_ok=True)
    (building / "etc/machine-id").write_text("")
    (building / "etc/ssh/sshd_config.d/slawatch-test.conf").write_text(
        "PasswordAuthentication no\nUseDNS no\n"
    )
    (building / ".slawatch-rootfs-complete").write_text(ROOTFS_NAME + "\n")
    shutil.rmtree(final, ignore_errors=True)
    building.rename(final)
    return final


@dataclass
class Machine:
    name: str
    address: str
    netns: str
    root: Path  # the overlay as mounted: the machine's / seen from the host
    process: subprocess.Popen[bytes]
    log_path: Path

    def leader(self) -> int:
        """The machine's PID 1 (systemd), as the host sees it."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            for child in _children(self.process.pid):
                if _comm(child) == "systemd":
                    return child
                for grandchild in _children(child):
                    if _comm(grandchild) == "systemd":
                        return grandchild
            if self.process.poll() is not None:
                raise MachineError(f"{self.name}: nspawn exited; see {self.log_path}")
            time.sleep(0.1)
        raise MachineError(f"{self.name}: no systemd inside after {BOOT_TIMEOUT:.0f} s")

    def run(self, argv: Sequence[str], timeout: float = 60.0, check: bool = True) -> str:
        """Run a command inside the machine as its root (for inspection, not deployment)."""
        enter = ["nsenter", "-t", str(self.leader()), "-m", "-u", "-i", "-n", "-p", "--"]
        return _run([*enter, *argv], timeout=timeout, check=check)

    def main_pid(self, unit: str) -> int:
        return int(self.run(["systemctl", "show", "-p", "MainPID", "--value", unit]).strip())

    def is_active(self, unit: str) -> str:
        return self.run(["systemctl", "is-active", unit], check=False).strip()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class Fleet:
    """Machines on one private network, and the controller namespace that reaches them."""

    def __init__(self, rootfs: Path, workdir: Path) -> None:
        self.rootfs = rootfs
        self.workdir = workdir
        self.tag = f"{NAME_PREFIX}{os.getpid()}"
        self.controller_netns = f"{self.tag}-ctl"
        self.machines: list[Machine] = []
        self.ssh_key = workdir / "operator_ed25519"
        self._mounts: list[Path] = []
        self._namespaces: list[str] = []

    def __enter__(self) -> Fleet:
        self._add_netns(self.controller_netns)
        ns = ["ip", "-n", self.controller_netns]
        _run([*ns, "link", "set", "lo", "up"])
        _run([*ns, "link", "add", "br0", "type", "bridge"])
        _run([*ns, "addr", "add", f"{CONTROLLER_ADDRESS}/24", "dev", "br0"])
        _run([*ns, "link", "set", "br0", "up"])
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.ssh_key)])
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_netns(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self._namespaces.append(name)

    def boot(self, name: str, host_number: int) -> Machine:
        """Boot a machine at 198.19.77.<host_number> with the operator's key installed."""
        address = f"{SUBNET}.{host_number}"
        netns = f"{self.tag}-{name}"
        self._add_netns(netns)
        veth = f"swd{os.getpid() % 10000}{host_number}"
        ctl = ["ip", "-n", self.controller_netns]
        _run([*ctl, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
        _run([*ctl, "link", "set", veth, "master", "br0", "up"])
        inside = ["ip", "-n", netns]
        _run([*inside, "link", "set", "lo", "up"])
        _run([*inside, "addr", "add", f"{address}/24", "dev", "eth0"])
        _run([*inside, "link", "set", "eth0", "up"])
        root = self._overlay(name)
        ssh_dir = root / "home/ops/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(self.ssh_key.with_suffix(".pub").read_text())
        owner = (root / "home/ops").stat()
        for path in (ssh_dir, ssh_dir / "authorized_keys"):
            os.chown(path, owner.st_uid, owner.st_gid)
        log_path = self.workdir / f"{name}.console.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                ["systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit",
                 f"--machine={name}", f"--uuid={uuid.uuid4()}", f"--directory={root}",
                 "--console=read-only",
                 f"--network-namespace-path=/run/netns/{netns}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        machine = Machine(name, address, netns, root, process, log_path)
        self.machines.append(machine)
        return machine

    def _overlay(self, name: str) -> Path:
        base = self.workdir / name
        upper, work, root = base / "upper", base / "work", base / "root"
        for path in (upper, work, root):
            path.mkdir(parents=True)
        options = f"lowerdir={self.rootfs},upperdir={upper},workdir={work}"
        _run(["mount", "-t", "overlay", "overlay", "-o", options, str(root)])
        self._mounts.append(root)
        return root

    def controller_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in the controller's namespace, where the machines are reachable."""
        return ["ip", "netns", "exec", self.controller_netns, *argv]

    def ssh_argv(self, machine: Machine, command: Sequence[str]) -> list[str]:
        return self.controller_argv([
            "ssh", "-i", str(self.ssh_key), "-o", "BatchMode=yes", "-o", "ConnectTimeout=2",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", f"ops@{machine.address}", *command,
        ])  # fmt: skip

    def wait_for_ssh(self, machine: Machine) -> None:
        """Until the operator can log in over SSH (bounded by BOOT_TIMEOUT)."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            done = subprocess.run(
                self.ssh_argv(machine, ["sudo", "-n", "true"]),
                capture_output=True, text=True, timeout=10,
            )  # fmt: skip
            if done.returncode == 0:
                return
            last = done.stderr.strip()
            if machine.process.poll() is not None:
                break
            time.sleep(0.5)
        raise MachineError(f"{machine.name}: no SSH login ({last}); see {machine.log_path}")

    def close(self) -> None:
        # All asked to shut down at once, then waited for: one shutdown's time, not three.
        for machine in self.machines:
            if machine.process.poll() is None:
                machine.process.send_signal(signal.SIGTERM)
        for machine in self.machines:
            _power_off(machine)
        for namespace in reversed(self._namespaces):
            _kill_netns_processes(namespace)
        for root in reversed(self._mounts):
            subprocess.run(["umount", "--lazy", str(root)], capture_output=True)
        for namespace in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        self.machines.clear()
        self._mounts.clear()
        self._namespaces.clear()


def _power_off(machine: Machine) -> None:
    """Wait for the shutdown SIGTERM asked nspawn for; SIGKILL if it takes too long."""
    try:
        machine.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        machine.process.kill()
        machine.process.wait(timeout=STOP_TIMEOUT)


def _kill_netns_processes(namespace: str) -> None:
    done = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    for pid in done.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def remove_stale_fleets() -> None:
    """Namespaces and overlays left by a test run whose process died (e.g. SIGKILL)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.strip() else ""
        owner = name.removeprefix(NAME_PREFIX).split("-")[0]
        if not name.startswith(NAME_PREFIX) or not owner.isdigit():
            continue
        if Path(f"/proc/{owner}").exists():
            continue
        _kill_netns_processes(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
