"""A small picture of the node and of the agent process, for heartbeats."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import psutil

from slawatch.v1 import uplink_pb2 as up


def boot_id() -> str:
    """The kernel's per-boot random id; changes exactly when the node reboots."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"boot-time-{int(psutil.boot_time())}"


def peak_rss_bytes() -> int:
    """This process's own peak RSS (VmHWM).

    Not ``ru_maxrss``: on Linux that starts from the peak of the parent that
    forked us, so an agent started by a large collector would report its size.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class HostSampler:
    def __init__(self) -> None:
        self._process = psutil.Process()
        psutil.cpu_percent(None)  # primes the counter: later calls measure since the last one

    def snapshot(self, checks_configured: int, rounds_skipped: int) -> up.HostSnapshot:
        return up.HostSnapshot(
            cpu_ratio=psutil.cpu_percent(None) / 100.0,
            memory_used_ratio=psutil.virtual_memory().percent / 100.0,
            load1=os.getloadavg()[0],
            boot_time_unix=int(psutil.boot_time()),
            agent_rss_bytes=self._process.memory_info().rss,
            agent_cpu_seconds=process_cpu_seconds(),
            checks_configured=checks_configured,
            rounds_skipped=rounds_skipped,
        )
