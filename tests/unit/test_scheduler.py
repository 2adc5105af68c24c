"""Scheduler: no drift, jitter, isolation of slow or broken probes, graceful stop.

The probes here are fakes at the probe seam: the scheduler is what is tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from agent.config import CheckConfig, CheckKind
from agent.observation import Observation
from agent.scheduler import Scheduler, phase_fraction
from slawatch.v1 import observation_pb2 as pb


def _check(check_id: str, interval: float, timeout: float = 0.05) -> CheckConfig:
    return CheckConfig(
        id=check_id,
        kind=CheckKind.TCP,
        target="198.18.0.1:80",
        interval=interval,
        timeout=timeout,
        packets=1,
        spacing=0,
    )


class FakeProbe:
    """Records when each round started; takes ``work()`` seconds per round."""

    def __init__(self, check: CheckConfig, work: float | None = None, fail: bool = False) -> None:
        self.check = check
        self.starts: list[float] = []
        self._work = work
        self._fail = fail

    async def run_round(self) -> Observation:
        self.starts.append(asyncio.get_running_loop().time())
        if self._fail:
            raise RuntimeError("probe bug")
        await asyncio.sleep(self._work if self._work is not None else random.uniform(0, 0.04))
        return Observation(self.check.id, pb.CHECK_KIND_TCP, self.check.target, 0, 0, pb.OUTCOME_OK)


async def _run_for(scheduler: Scheduler, seconds: float, grace: float = 0.0) -> None:
    task = asyncio.create_task(scheduler.run(grace))
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_rounds_do_not_drift_when_probes_take_variable_time() -> None:
    probe = FakeProbe(_check("steady", interval=0.1))
    emitted: list[Observation] = []
    asyncio.run(_run_for(Scheduler([probe], emitted.append, jitter=0.0), 2.05))
    starts = probe.starts
    assert 19 <= len(starts) <= 21
    # Round k starts at first + k * interval: the error does not accumulate.
    worst = max(abs(t - (starts[0] + k * 0.1)) for k, t in enumerate(starts))
    assert worst < 0.02, f"drifted by {worst * 1000:.1f} ms"
    assert len(emitted) >= len(starts) - 1


def test_slow_probe_does_not_delay_other_checks() -> None:
    slow = FakeProbe(_check("slow", interval=0.2, timeout=0.1), work=1.5)  # ignores its timeout
    fast = FakeProbe(_check("fast", interval=0.05))
    scheduler = Scheduler([slow, fast], lambda o: None, jitter=0.0)
    asyncio.run(_run_for(scheduler, 1.0))
    gaps = [b - a for a, b in zip(fast.starts, fast.starts[1:], strict=False)]
    assert len(fast.starts) >= 18
    assert max(gaps) < 0.05 + 0.02
    # The slow check's later rounds were skipped, not queued behind it.
    assert len(slow.starts) == 1
    assert scheduler.stats.rounds_skipped >= 3


def test_failing_probe_reports_error_and_others_continue() -> None:
    broken = FakeProbe(_check("broken", interval=0.05), fail=True)
    healthy = FakeProbe(_check("healthy", interval=0.05))
    emitted: list[Observation] = []
    asyncio.run(_run_for(Scheduler([broken, healthy], emitted.append, jitter=0.0), 0.3))
    errors = [o for o in emitted if o.check_id == "broken"]
    assert errors
    assert all(o.outcome == pb.OUTCOME_ERROR for o in errors)
    assert all("probe bug" in o.error_detail for o in errors)
    assert [o for o in emitted if o.check_id == "healthy" and o.outcome == pb.OUTCOME_OK]


def test_round_overrunning_its_deadline_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.scheduler.DEADLINE_GRACE", 0.05)
    hung = FakeProbe(_check("hung", interval=1.0, timeout=0.05), work=10)
    emitted: list[Observation] = []
    asyncio.run(_run_for(Scheduler([hung], emitted.append, jitter=0.0), 0.4))
    assert len(emitted) == 1
    assert emitted[0].outcome == pb.OUTCOME_ERROR
    assert emitted[0].error_class == pb.ERROR_CLASS_LOCAL_ERROR
    assert "overran" in emitted[0].error_detail


def test_jitter_spreads_checks_with_a_stable_phase() -> None:
    probes = [FakeProbe(_check(f"c{i}", interval=1.0), work=0) for i in range(50)]
    asyncio.run(_run_for(Scheduler(probes, lambda o: None, jitter=0.5), 0.6))
    firsts = sorted(p.starts[0] for p in probes)
    spread = firsts[-1] - firsts[0]
    assert 0.3 < spread < 0.5  # spread over (almost) half the interval
    assert phase_fraction("c1") == phase_fraction("c1")
    assert len({round(phase_fraction(f"c{i}"), 6) for i in range(50)}) == 50


def test_stop_lets_running_rounds_finish_within_grace() -> None:
    probe = FakeProbe(_check("finishing", interval=1.0, timeout=0.5), work=0.2)
    emitted: list[Observation] = []
    asyncio.run(_run_for(Scheduler([probe], emitted.append, jitter=0.0), 0.05, grace=1.0))
    assert len(emitted) == 1
    assert emitted[0].outcome == pb.OUTCOME_OK


def test_checks_added_and_retired_while_running() -> None:
    """A pushed check starts within one interval; a retired one stops, and its slot
    reused by a new check does not inherit the old check's schedule."""
    old = FakeProbe(_check("old", interval=0.2), work=0.01)
    new = FakeProbe(_check("new", interval=0.5), work=0.01)
    later = FakeProbe(_check("later", interval=0.3), work=0.01)

    async def scenario() -> tuple[float, float, float]:
        scheduler = Scheduler([old], lambda _o: None, jitter=0.0)
        task = asyncio.create_task(scheduler.run())
        await asyncio.sleep(0.5)
        added_at = asyncio.get_running_loop().time()
        scheduler.add([new])
        await asyncio.sleep(0.3)
        retired_at = asyncio.get_running_loop().time()
        scheduler.retire({"old"})
        scheduler.add([later])  # takes the slot "old" left
        assert scheduler.check_count == 2
        await asyncio.sleep(1.0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return added_at, retired_at, asyncio.get_running_loop().time()

    added_at, retired_at, ended_at = asyncio.run(scenario())
    assert new.starts
    assert new.starts[0] - added_at < 0.5 + 0.05
    assert old.starts
    # A round already created when retire() ran may begin just after it.
    assert all(start <= retired_at + 0.05 for start in old.starts)
    # Every 0.3 s from its start, not also on "old"'s 0.2 s rhythm (that would
    # give about twice as many rounds).
    expected = (ended_at - retired_at) / 0.3
    assert expected / 2 <= len(later.starts) <= expected + 1, later.starts
