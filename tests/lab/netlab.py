"""Hosts as network namespaces, joined by veth links through router namespaces.

    lab = Lab()
    agent, r1, target = lab.host("agent"), lab.router("r1"), lab.host("target")
    lab.attach(agent, r1)         # agent gets .2, r1 gets .1, agent routes via r1
    lab.attach(target, r1)
    lab.set_loss(r1, target, percent=5)   # nftables random drop, r1 -> target
    lab.cut(r1, target) / lab.restore(r1, target)
    lab.close()                   # kills every process in the lab, deletes namespaces

Faults use what these kernels offer: nftables (``numgen random``) for loss and
cuts; netem is not available. Each link gets a /24 from 198.18.0.0/16
(reserved for benchmarking) and a /64 from 2001:db8:5a::/48 (documentation);
these addresses exist only inside the namespaces the lab creates, and nothing
here sends traffic anywhere else.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

NAME_PREFIX = "swlab-"
V6_PREFIX = "2001:db8:5a"  # documentation prefix; link N is 2001:db8:5a:N::/64
_V4_POOL = ipaddress.ip_network("198.18.0.0/16")
COMMAND_TIMEOUT = 30.0


class LabError(RuntimeError):
    """A lab command failed; the message carries the command and its stderr."""


def lab_unavailable_reason() -> str | None:
    """Why the lab cannot run here, or None if it can."""
    if os.geteuid() != 0:
        return "the network lab needs root (network namespaces, nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"the network lab needs `{tool}` (scripts/setup --dev installs it)"
    probe = f"{NAME_PREFIX}probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create network namespaces: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _run(argv: Sequence[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(argv)}: timed out") from exc
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def remove_stale_namespaces() -> list[str]:
    """Delete lab namespaces left by test runs whose process is gone."""
    removed = []
    for line in _run(["ip", "netns", "list"]).splitlines():
        name = line.split()[0] if line.strip() else ""
        if not name.startswith(NAME_PREFIX):
            continue
        owner = name.removeprefix(NAME_PREFIX).split("-")[0]
        if owner.isdigit() and Path(f"/proc/{owner}").exists():
            continue
        _kill_namespace_processes(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        removed.append(name)
    return removed


def _kill_namespace_processes(namespace: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    for pid in pids.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@dataclass(eq=False)
class Host:
    """A network namespace standing for one machine."""

    lab: Lab
    name: str
    namespace: str
    router: bool = False
    addresses: dict[str, str] = field(default_factory=dict)  # peer name -> our IPv4 there
    addresses6: dict[str, str] = field(default_factory=dict)  # peer name -> our IPv6 there

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *argv]

    def run(self, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> str:
        """Run a command in this host and return its stdout; raise LabError on failure."""
        try:
            done = subprocess.run(
                self.exec_argv(argv), capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{self.name}: {' '.join(argv)}: timed out after {timeout}s") from exc
        if done.returncode != 0:
            raise LabError(f"{self.name}: {' '.join(argv)}: {done.stderr.strip()}")
        return done.stdout

    def spawn(
        self, argv: Sequence[str], log_path: Path | None = None, append: bool = False
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process in this host; the lab stops it at close."""
        out = open(log_path, "ab" if append else "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
        process = subprocess.Popen(
            self.exec_argv(argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.lab.processes.append(process)
        return process

    def address_toward(self, peer: Host, v6: bool = False) -> str:
        return (self.addresses6 if v6 else self.addresses)[peer.name]


@dataclass(frozen=True)
class Link:
    a: Host
    b: Host
    a_ifname: str
    b_ifname: str
    network: ipaddress.IPv4Network


class Lab:
    def __init__(self) -> None:
        self._tag = f"{NAME_PREFIX}{os.getpid()}-{time.monotonic_ns() % 100_000}"
        self.hosts: dict[str, Host] = {}
        self.links: list[Link] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self._subnets = _V4_POOL.subnets(new_prefix=24)
        self._link_numbers = itertools.count(1)
        # (host name, interface) -> nftables rule body, re-applied as a whole
        self._egress_rules: dict[tuple[str, str], str] = {}

    # -- topology ---------------------------------------------------------

    def host(self, name: str, router: bool = False) -> Host:
        if name in self.hosts:
            raise LabError(f"host {name} exists")
        namespace = f"{self._tag}-{name}"
        _run(["ip", "netns", "add", namespace])
        host = Host(self, name, namespace, router)
        self.hosts[name] = host
        host.run(["ip", "link", "set", "lo", "up"])
        # No duplicate address detection: link-local addresses (which neighbour
        # discovery needs) are usable at once instead of after a second or two.
        for scope in ("all", "default"):
            host.run(["sysctl", "-qw", f"net.ipv6.conf.{scope}.accept_dad=0"])
        if router:
            host.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            # "default" too: links are added later, and new interfaces take "default".
            for scope in ("all", "default"):
                host.run(["sysctl", "-qw", f"net.ipv6.conf.{scope}.forwarding=1"])
        return host

    def router(self, name: str) -> Host:
        return self.host(name, router=True)

    def link(self, a: Host, b: Host) -> Link:
        """A veth pair between a and b on a fresh /24 and /64: a gets .1 and ::1, b .2 and ::2."""
        number = next(self._link_numbers)
        a_if, b_if = f"l{number}-{b.name}"[:15], f"l{number}-{a.name}"[:15]
        _run([
            "ip", "link", "add", a_if, "netns", a.namespace,
            "type", "veth", "peer", "name", b_if, "netns", b.namespace,
        ])  # fmt: skip
        network = next(self._subnets)
        hosts = network.hosts()
        network6 = ipaddress.ip_network(f"{V6_PREFIX}:{number:x}::/64")
        for host, ifname, address, address6 in (
            (a, a_if, next(hosts), network6[1]),
            (b, b_if, next(hosts), network6[2]),
        ):
            host.run(["ip", "addr", "add", f"{address}/{network.prefixlen}", "dev", ifname])
            # nodad: usable at once, instead of after duplicate address detection
            host.run(["ip", "-6", "addr", "add", f"{address6}/64", "dev", ifname, "nodad"])
            host.run(["ip", "link", "set", ifname, "up"])
        a.addresses[b.name] = str(network[1])
        b.addresses[a.name] = str(network[2])
        a.addresses6[b.name] = str(network6[1])
        b.addresses6[a.name] = str(network6[2])
        link = Link(a, b, a_if, b_if, network)
        self.links.append(link)
        return link

    def attach(self, host: Host, router: Host) -> Link:
        """Link a host to a router and route everything from the host through it."""
        link = self.link(router, host)
        host.run(["ip", "route", "add", "default", "via", router.address_toward(host)])
        host.run(
            ["ip", "-6", "route", "add", "default", "via", router.address_toward(host, v6=True)]
        )
        return link

    def add_route(self, host: Host, destination: str, via: Host) -> None:
        host.run(["ip", "route", "add", destination, "via", via.address_toward(host)])

    def find_link(self, a: Host, b: Host) -> tuple[Link, str]:
        """The link between a and b, and a's interface on it."""
        for link in self.links:
            if (link.a, link.b) == (a, b):
                return link, link.a_ifname
            if (link.a, link.b) == (b, a):
                return link, link.b_ifname
        raise LabError(f"no link between {a.name} and {b.name}")

    # -- faults -------------------------------------------------------------

    def set_loss(self, sender: Host, receiver: Host, percent: float) -> None:
        """Drop ``percent`` % of packets leaving sender toward receiver, at random."""
        if not 0 <= percent <= 100:
            raise LabError(f"loss {percent}% is not a percentage")
        basis_points = round(percent * 100)
        rule = f"numgen random mod 10000 < {basis_points} counter drop" if basis_points else ""
        self._set_egress(sender, receiver, rule)

    def set_every_nth_drop(self, sender: Host, receiver: Host, nth: int) -> None:
        """Drop exactly every nth IPv4 packet leaving sender toward receiver.

        IPv4 only: IPv6 link-local chatter (router solicitations, MLD) on the
        link would otherwise advance the counter and shift which packets drop.
        """
        self._set_egress(
            sender, receiver, f"meta nfproto ipv4 numgen inc mod {nth} == 0 counter drop"
        )

    def cut(self, a: Host, b: Host) -> None:
        """Cut the link both ways (the interfaces stay up, so routes survive)."""
        self._set_egress(a, b, "counter drop")
        self._set_egress(b, a, "counter drop")

    def restore(self, a: Host, b: Host) -> None:
        """Remove every fault on the link between a and b, both ways."""
        self._set_egress(a, b, "")
        self._set_egress(b, a, "")

    def _set_egress(self, sender: Host, receiver: Host, rule: str) -> None:
        _link, ifname = self.find_link(sender, receiver)
        key = (sender.name, ifname)
        if rule:
            self._egress_rules[key] = rule
        else:
            self._egress_rules.pop(key, None)
        rules = [
            f'add rule inet lab egress oifname "{iface}" {body}'
            for (host_name, iface), body in self._egress_rules.items()
            if host_name == sender.name
        ]
        script = "\n".join([
            "add table inet lab",
            "add chain inet lab egress { type filter hook postrouting priority 0; }",
            "flush chain inet lab egress",
            *rules,
        ])  # fmt: skip
        _run(sender.exec_argv(["nft", "-f", "-"]), stdin=script + "\n")

    # -- teardown -----------------------------------------------------------

    def close(self) -> None:
        """Stop every process and delete every namespace; safe to call twice."""
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.processes.clear()
        for host in self.hosts.values():
            _kill_namespace_processes(host.namespace)
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
        self.hosts.clear()
