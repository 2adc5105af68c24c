"""Pushed checks: all or nothing, applied as a difference, cached, never clashing with local ids.

The scheduler side is a recording fake at the seam (add / retire); what is
tested is the decision what to add, retire, refuse and cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from agent.config import CheckConfig
from agent.observation import Observation
from agent.probes import Probe
from agent.pushed_checks import CACHE_NAME, PushedChecks
from slawatch.v1 import uplink_pb2 as up


class Recorder:
    def __init__(self) -> None:
        self.running: dict[str, CheckConfig] = {}
        self.added: list[str] = []
        self.retired: list[str] = []

    def build(self, check: CheckConfig) -> Probe:
        return _Probe(check)

    def add(self, probes: Sequence[Probe]) -> None:
        for probe in probes:
            self.running[probe.check.id] = probe.check
            self.added.append(probe.check.id)

    def retire(self, check_ids: set[str]) -> None:
        for check_id in sorted(check_ids):
            self.running.pop(check_id, None)
            self.retired.append(check_id)


class _Probe:
    def __init__(self, check: CheckConfig) -> None:
        self.check = check

    async def run_round(self) -> Observation:  # never run here
        raise NotImplementedError


def _pushed(tmp_path: Path, recorder: Recorder, local: set[str] | None = None) -> PushedChecks:
    return PushedChecks(tmp_path, local or {"lo"}, recorder.build, recorder.add, recorder.retire)


def _push(version: str, *checks: dict[str, object]) -> up.ConfigPush:
    return up.ConfigPush(version=version, checks_yaml=yaml.safe_dump(list(checks)))


PING = {"id": "ping", "kind": "icmp", "target": "198.18.0.1", "interval": 5, "timeout": 1}
TCP = {"id": "tcp", "kind": "tcp", "target": "198.18.0.1:443", "interval": 5, "timeout": 1}


def test_a_push_is_applied_as_a_difference_and_cached(tmp_path: Path) -> None:
    recorder = Recorder()
    pushed = _pushed(tmp_path, recorder)
    assert pushed.take(_push("v1", PING, TCP)).accepted
    assert set(recorder.running) == {"ping", "tcp"}
    # ping unchanged (keeps its rhythm), tcp changed, a new one added.
    status = pushed.take(_push("v2", PING, dict(TCP, interval=10), dict(PING, id="ping2")))
    assert status.accepted
    assert recorder.added == ["ping", "tcp", "tcp", "ping2"]
    assert recorder.retired == ["tcp"]
    assert recorder.running["tcp"].interval == 10
    cached = yaml.safe_load((tmp_path / CACHE_NAME).read_text())
    assert cached["version"] == "v2"
    assert [c["id"] for c in cached["checks"]] == ["ping", "tcp", "ping2"]
    # Removing a check retires it.
    assert pushed.take(_push("v3", PING)).accepted
    assert set(recorder.running) == {"ping"}


def test_an_invalid_push_changes_nothing(tmp_path: Path) -> None:
    recorder = Recorder()
    pushed = _pushed(tmp_path, recorder)
    pushed.take(_push("v1", PING))
    before = (tmp_path / CACHE_NAME).read_text()
    status = pushed.take(_push("v2", PING, dict(TCP, interval=0), dict(TCP, id="x", kind="?")))
    assert not status.accepted
    assert status.version == "v2"
    assert "checks[1].interval" in status.reason
    assert "checks[2].kind" in status.reason  # every problem, not only the first
    assert set(recorder.running) == {"ping"}
    assert pushed.version == "v1"
    assert (tmp_path / CACHE_NAME).read_text() == before


def test_pushes_may_not_take_local_ids_nor_be_garbage(tmp_path: Path) -> None:
    pushed = _pushed(tmp_path, Recorder(), local={"ping"})
    clash = pushed.take(_push("v1", PING))
    assert not clash.accepted
    assert "reuse ids of this agent's own checks: ping" in clash.reason
    not_yaml = pushed.take(up.ConfigPush(version="v2", checks_yaml="[unclosed"))
    assert not not_yaml.accepted
    assert "not valid YAML" in not_yaml.reason
    not_list = pushed.take(up.ConfigPush(version="v3", checks_yaml="a: 1"))
    assert "must be a list of checks" in not_list.reason
    no_version = pushed.take(_push("", TCP))
    assert "version must be" in no_version.reason


def test_a_restart_runs_the_cached_list(tmp_path: Path) -> None:
    first = Recorder()
    _pushed(tmp_path, first).take(_push("v7", PING, TCP))
    second = Recorder()
    restarted = _pushed(tmp_path, second)
    restarted.load_cache()
    assert restarted.version == "v7"
    assert set(second.running) == {"ping", "tcp"}
    # The same version pushed again after reconnecting changes nothing.
    assert restarted.take(_push("v7", PING, TCP)).accepted
    assert second.added == ["ping", "tcp"]


def test_a_broken_cache_is_ignored(tmp_path: Path) -> None:
    (tmp_path / CACHE_NAME).write_text("version: v1\nchecks: [{id: x, kind: icmp}]\n")
    recorder = Recorder()
    pushed = _pushed(tmp_path, recorder)
    pushed.load_cache()
    assert pushed.version == ""
    assert not recorder.running
