"""Host health: a psutil snapshot of the node each round, and findings attribution can use.

Findings: the node rebooted, a disk or its inodes are full, memory is full,
a configured process is not running. A round with findings is ``failed``
with the error class of the most telling one (rebooted, then resource
exhausted, then process missing); the snapshot is always in the detail.

Reboots are seen two ways: the boot time changed since the previous round,
or this is the agent's first round and the node has been up for less than
two intervals (after a reboot the agent starts afresh and has no previous
round to compare with).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Protocol

import psutil

from agent.check_options import HostOptions
from agent.config import CheckConfig
from agent.host import process_cpu_seconds
from agent.observation import Observation
from agent.probes.base import WIRE_KIND, RoundClock
from slawatch.v1 import observation_pb2 as pb

MAX_INTERFACES = 64
_FINDING_CLASS = {
    pb.Finding.KIND_REBOOTED: pb.ERROR_CLASS_REBOOTED,
    pb.Finding.KIND_DISK_FULL: pb.ERROR_CLASS_RESOURCE_EXHAUSTED,
    pb.Finding.KIND_INODES_FULL: pb.ERROR_CLASS_RESOURCE_EXHAUSTED,
    pb.Finding.KIND_MEMORY_FULL: pb.ERROR_CLASS_RESOURCE_EXHAUSTED,
    pb.Finding.KIND_PROCESS_MISSING: pb.ERROR_CLASS_PROCESS_MISSING,
}


@dataclass(frozen=True, slots=True)
class DiskSample:
    used_ratio: float
    inodes_used_ratio: float
    total_bytes: int


class HostSampler(Protocol):
    """Where the host probe reads the node from (psutil; a fake in tests)."""

    def boot_time(self) -> float: ...
    def disk(self, mount: str) -> DiskSample: ...
    def memory_used_ratio(self) -> float: ...
    def swap_used_ratio(self) -> float: ...
    def cpu_ratio(self) -> float: ...
    def process_counts(self, names: tuple[str, ...]) -> dict[str, int]: ...
    def interface_counters(self) -> dict[str, tuple[int, int, int, int, int, int, int, int]]: ...
    def agent_rss_bytes(self) -> int: ...


class PsutilSampler:
    def __init__(self) -> None:
        psutil.cpu_percent(None)  # primes it: later calls measure since the previous one

    def boot_time(self) -> float:
        return float(psutil.boot_time())

    def agent_rss_bytes(self) -> int:
        return int(psutil.Process().memory_info().rss)

    def disk(self, mount: str) -> DiskSample:
        usage = psutil.disk_usage(mount)
        stat = os.statvfs(mount)
        inodes = 1 - stat.f_ffree / stat.f_files if stat.f_files else 0.0
        return DiskSample(usage.used / usage.total if usage.total else 0.0, inodes, usage.total)

    def memory_used_ratio(self) -> float:
        memory = psutil.virtual_memory()
        return float(1 - memory.available / memory.total)

    def swap_used_ratio(self) -> float:
        return float(psutil.swap_memory().percent / 100)

    def cpu_ratio(self) -> float:
        return float(psutil.cpu_percent(None) / 100)

    def process_counts(self, names: tuple[str, ...]) -> dict[str, int]:
        counts = dict.fromkeys(names, 0)
        for process in psutil.process_iter(["name"]):
            name = process.info["name"]
            if name in counts:
                counts[name] += 1
        return counts

    def interface_counters(self) -> dict[str, tuple[int, int, int, int, int, int, int, int]]:
        return {
            name: (c.packets_recv, c.packets_sent, c.bytes_recv, c.bytes_sent,
                   c.errin, c.errout, c.dropin, c.dropout)
            for name, c in psutil.net_io_counters(pernic=True).items()
        }  # fmt: skip


def _finding(kind: pb.Finding.Kind, subject: str, value: float, threshold: float) -> pb.Finding:
    return pb.Finding(kind=kind, subject=subject, value=value, threshold=threshold)


class HostProbe:
    def __init__(self, check: CheckConfig, sampler: HostSampler | None = None) -> None:
        self.check = check
        self._options = check.options if isinstance(check.options, HostOptions) else HostOptions()
        self._sampler = sampler or PsutilSampler()
        self._last_boot_time: float | None = None
        self._last_counters: dict[str, tuple[int, ...]] = {}
        self._last_sample_at = 0.0

    async def run_round(self) -> Observation:
        clock = RoundClock()
        # psutil reads /proc and statvfs; a hung mount must not stall the event loop.
        detail = await asyncio.to_thread(self._snapshot)
        findings = list(detail.findings)
        observation = Observation(
            check_id=self.check.id,
            kind=WIRE_KIND[self.check.kind],
            target=self.check.target,
            start_unix_ns=clock.start_unix_ns,
            duration_ns=clock.elapsed_ns(),
            outcome=pb.OUTCOME_FAILED if findings else pb.OUTCOME_OK,
            detail=detail,
        )
        if findings:
            worst = min(findings, key=lambda f: list(_FINDING_CLASS).index(f.kind))
            observation.error_class = _FINDING_CLASS[worst.kind]
            observation.error_detail = "; ".join(_describe(f) for f in findings)[:1024]
        return observation

    def _snapshot(self) -> pb.HostDetail:
        sampler, options = self._sampler, self._options
        load1, load5, load15 = os.getloadavg()
        detail = pb.HostDetail(
            cpu_ratio=sampler.cpu_ratio(),
            memory_used_ratio=sampler.memory_used_ratio(),
            swap_used_ratio=sampler.swap_used_ratio(),
            load1=load1,
            load5=load5,
            load15=load15,
            boot_time_unix=int(sampler.boot_time()),
            agent_rss_bytes=sampler.agent_rss_bytes(),
            agent_cpu_seconds=process_cpu_seconds(),
        )
        self._check_reboot(detail)
        self._add_disks(detail)
        if detail.memory_used_ratio >= options.memory_full_ratio:
            detail.findings.append(
                _finding(
                    pb.Finding.KIND_MEMORY_FULL,
                    "memory",
                    detail.memory_used_ratio,
                    options.memory_full_ratio,
                )
            )
        for name, running in sampler.process_counts(options.processes).items():
            detail.processes.add(name=name, running=running)
            if running == 0:
                detail.findings.append(_finding(pb.Finding.KIND_PROCESS_MISSING, name, 0, 1))
        self._add_interfaces(detail)
        return detail

    def _check_reboot(self, detail: pb.HostDetail) -> None:
        boot_time = detail.boot_time_unix
        uptime = time.time() - boot_time
        first_round = self._last_boot_time is None
        changed = not first_round and boot_time != self._last_boot_time
        if changed or (first_round and uptime < 2 * self.check.interval):
            detail.findings.append(_finding(pb.Finding.KIND_REBOOTED, "node", uptime, 0))
        self._last_boot_time = boot_time

    def _add_disks(self, detail: pb.HostDetail) -> None:
        options = self._options
        for mount in options.mounts:
            try:
                disk = self._sampler.disk(mount)
            except OSError as exc:
                detail.disks.add(mount=mount, error=str(exc.strerror or exc)[:255])
                continue
            detail.disks.add(mount=mount, used_ratio=disk.used_ratio,
                             inodes_used_ratio=disk.inodes_used_ratio,
                             total_bytes=disk.total_bytes)  # fmt: skip
            if disk.used_ratio >= options.disk_full_ratio:
                detail.findings.append(
                    _finding(
                        pb.Finding.KIND_DISK_FULL, mount, disk.used_ratio, options.disk_full_ratio
                    )
                )
            if disk.inodes_used_ratio >= options.inodes_full_ratio:
                detail.findings.append(
                    _finding(
                        pb.Finding.KIND_INODES_FULL,
                        mount,
                        disk.inodes_used_ratio,
                        options.inodes_full_ratio,
                    )
                )

    def _add_interfaces(self, detail: pb.HostDetail) -> None:
        now = time.monotonic()
        counters = self._sampler.interface_counters()
        wanted = self._options.interfaces or sorted(n for n in counters if n != "lo")
        elapsed = now - self._last_sample_at
        for name in wanted[:MAX_INTERFACES]:
            current = counters.get(name)
            if current is None:
                continue
            previous = self._last_counters.get(name)
            rates = [0.0] * 4
            if previous is not None and elapsed > 0:
                rates = [max(0, c - p) / elapsed for c, p in zip(current[:4], previous[:4],
                                                                  strict=True)]  # fmt: skip
            detail.interfaces.add(
                name=name, rx_packets_per_second=rates[0], tx_packets_per_second=rates[1],
                rx_bytes_per_second=rates[2], tx_bytes_per_second=rates[3],
                rx_errors=current[4], tx_errors=current[5],
                rx_dropped=current[6], tx_dropped=current[7],
            )  # fmt: skip
        self._last_counters = dict(counters)
        self._last_sample_at = now


def _describe(finding: pb.Finding) -> str:
    kind = pb.Finding.Kind.Name(finding.kind).removeprefix("KIND_").lower()
    if finding.kind == pb.Finding.KIND_REBOOTED:
        return f"rebooted {finding.value:.0f}s ago"
    if finding.kind == pb.Finding.KIND_PROCESS_MISSING:
        return f"process {finding.subject} not running"
    return f"{kind} {finding.subject}: {finding.value:.1%} >= {finding.threshold:.1%}"
