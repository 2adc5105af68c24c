"""The host probe on this machine: real psutil, a real tiny tmpfs, real processes.

Only the boot time goes through the sampler seam: a test cannot reboot the node.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.check_options import HostOptions
from agent.config import CheckConfig, CheckKind
from agent.observation import Observation
from agent.probes.host import HostProbe, PsutilSampler
from slawatch.v1 import observation_pb2 as pb
from tests.conftest import skip_or_fail


def _check(options: HostOptions, interval: float = 60) -> CheckConfig:
    return CheckConfig("host", CheckKind.HOST, "node-1", interval, 5.0, 1, 1.0, options)


class MovableBoot(PsutilSampler):
    """psutil for everything, but a boot time the test sets."""

    def __init__(self, boot_time: float) -> None:
        super().__init__()
        self.boot = boot_time

    def boot_time(self) -> float:
        return self.boot


def _round(probe: HostProbe) -> Observation:
    return asyncio.run(probe.run_round())


def _kinds(observation: Observation) -> set[int]:
    assert isinstance(observation.detail, pb.HostDetail)
    return {f.kind for f in observation.detail.findings}


def test_changed_boot_time_is_a_reboot() -> None:
    sampler = MovableBoot(time.time() - 86_400)
    probe = HostProbe(_check(HostOptions(mounts=())), sampler)
    first = _round(probe)
    assert first.outcome == pb.OUTCOME_OK, first.error_detail
    sampler.boot = time.time() - 30
    second = _round(probe)
    assert second.outcome == pb.OUTCOME_FAILED
    assert second.error_class == pb.ERROR_CLASS_REBOOTED
    assert _kinds(second) == {pb.Finding.KIND_REBOOTED}
    assert _round(probe).outcome == pb.OUTCOME_OK  # reported once, not every round


def test_first_round_soon_after_boot_is_a_reboot() -> None:
    probe = HostProbe(_check(HostOptions(mounts=()), interval=60), MovableBoot(time.time() - 20))
    assert _round(probe).error_class == pb.ERROR_CLASS_REBOOTED


@pytest.fixture
def tiny_tmpfs() -> Iterator[Path]:
    if os.geteuid() != 0:
        skip_or_fail("mounting a tmpfs needs root")
    mount_point = Path(tempfile.mkdtemp(prefix="slawatch-tmpfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=64", "tmpfs",
                    str(mount_point)], check=True, timeout=10)  # fmt: skip
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=10)
        mount_point.rmdir()


def test_full_disk_is_resource_exhausted(tiny_tmpfs: Path) -> None:
    probe = HostProbe(_check(HostOptions(mounts=(str(tiny_tmpfs),))))
    assert _round(probe).outcome == pb.OUTCOME_OK
    (tiny_tmpfs / "filler").write_bytes(b"\0" * (1024 * 1024 - 8192))
    full = _round(probe)
    assert full.error_class == pb.ERROR_CLASS_RESOURCE_EXHAUSTED
    assert pb.Finding.KIND_DISK_FULL in _kinds(full)
    assert str(tiny_tmpfs) in full.error_detail


def test_inodes_exhausted(tiny_tmpfs: Path) -> None:
    probe = HostProbe(_check(HostOptions(mounts=(str(tiny_tmpfs),))))
    for index in range(70):
        try:
            (tiny_tmpfs / f"f{index}").touch()
        except OSError:
            break  # out of inodes: that is the point
    assert pb.Finding.KIND_INODES_FULL in _kinds(_round(probe))


def test_missing_and_running_processes(tmp_path: Path) -> None:
    sleeper = tmp_path / "swtest-sleeper"
    shutil.copy("/bin/sleep", sleeper)
    process = subprocess.Popen([str(sleeper), "30"])
    try:
        options = HostOptions(mounts=(), processes=("swtest-sleeper", "swtest-absent"))
        observation = _round(HostProbe(_check(options)))
    finally:
        process.kill()
        process.wait(timeout=5)
    assert observation.error_class == pb.ERROR_CLASS_PROCESS_MISSING
    assert isinstance(observation.detail, pb.HostDetail)
    running = {p.name: p.running for p in observation.detail.processes}
    assert running == {"swtest-sleeper": 1, "swtest-absent": 0}
    assert "swtest-absent not running" in observation.error_detail


def test_unreadable_mount_is_reported_not_called_full() -> None:
    observation = _round(HostProbe(_check(HostOptions(mounts=("/no/such/mount",)))))
    assert isinstance(observation.detail, pb.HostDetail)
    assert observation.detail.disks[0].error
    assert pb.Finding.KIND_DISK_FULL not in _kinds(observation)
