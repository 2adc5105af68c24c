"""Owns timing: runs every check's rounds on its interval, with jitter and no drift.

* No drift: round k of a check is due at ``origin + phase + k * interval``,
  computed from the start, never from when the previous round ended.
* Jitter: each check gets a fixed phase in ``[0, jitter * interval)`` derived
  from its id, so a thousand checks do not fire in the same millisecond and a
  restart keeps the same spread.
* Isolation: every round runs in its own task with its own deadline. A slow
  round delays nothing else; if it is still running when its next round is
  due, that next round is skipped and counted, never queued up.

All checks share one heap of due times and one timer (rather than a sleeping
task per check): with a thousand checks that keeps asyncio's own timer heap
small, which is where most of the per-round CPU went.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.observation import Observation
from agent.probes.base import WIRE_KIND, Probe
from slawatch.v1 import observation_pb2 as pb

log = logging.getLogger(__name__)

# A round may overrun its own timeout by this much before the scheduler stops it.
DEADLINE_GRACE = 1.0
# Rounds due within this much of each other start in the same wake-up.
TICK = 0.001

_START, _DEADLINE = 0, 1


def phase_fraction(check_id: str) -> float:
    """A stable number in [0, 1) for a check id."""
    digest = hashlib.blake2b(check_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def round_deadline(probe: Probe) -> float:
    check = probe.check
    return (check.packets - 1) * check.spacing + check.timeout + DEADLINE_GRACE


@dataclass(slots=True)
class SchedulerStats:
    rounds_started: int = 0
    rounds_skipped: int = 0
    rounds_failed: int = 0


class _Running:
    """One round in flight: its task, and whether the scheduler cut it off."""

    __slots__ = ("overran", "start_mono", "start_unix_ns", "task")

    def __init__(self) -> None:
        self.start_unix_ns = time.time_ns()
        self.start_mono = time.monotonic_ns()
        self.overran = False
        self.task: asyncio.Task[None] | None = None


class Scheduler:
    def __init__(
        self,
        probes: Sequence[Probe],
        emit: Callable[[Observation], None],
        jitter: float = 0.5,
    ) -> None:
        self._probes = probes
        self._emit = emit
        self._jitter = jitter
        self.stats = SchedulerStats()
        self._running: list[_Running | None] = [None] * len(probes)
        # (when, tie-breaker, what, probe index, round it concerns)
        self._heap: list[tuple[float, int, int, int, _Running | None]] = []
        self._order = itertools.count()

    async def run(self, finish_grace: float = 0.0) -> None:
        """Run until cancelled.

        On cancellation no new round starts; rounds already running get up to
        ``finish_grace`` seconds to finish and report, then are cancelled.
        """
        loop = asyncio.get_running_loop()
        origin = loop.time()
        for index, probe in enumerate(self._probes):
            phase = phase_fraction(probe.check.id) * self._jitter * probe.check.interval
            self._push(origin + phase, _START, index, None)
        try:
            while self._heap:
                delay = self._heap[0][0] - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._run_due(loop.time() + TICK)
        finally:
            await self._finish(finish_grace)

    def _push(self, when: float, what: int, index: int, running: _Running | None) -> None:
        heapq.heappush(self._heap, (when, next(self._order), what, index, running))

    def _run_due(self, horizon: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= horizon:
            when, _, what, index, running = heapq.heappop(heap)
            if what == _START:
                self._start_round(index, when, horizon)
            elif running is not None and running.task is not None and not running.task.done():
                running.overran = True
                running.task.cancel()

    def _start_round(self, index: int, due: float, horizon: float) -> None:
        probe = self._probes[index]
        interval = probe.check.interval
        if self._running[index] is not None:
            self.stats.rounds_skipped += 1
            log.warning("check %s: previous round still running, skipped", probe.check.id)
        else:
            running = _Running()
            self._running[index] = running
            running.task = asyncio.create_task(self._one_round(index, running))
            self._push(due + round_deadline(probe), _DEADLINE, index, running)
            self.stats.rounds_started += 1
        next_due = due + interval
        if horizon - next_due > interval:  # the loop was stalled (suspend, overload): realign
            missed = int((horizon - next_due) // interval) + 1
            self.stats.rounds_skipped += missed
            next_due += missed * interval
        self._push(next_due, _START, index, None)

    async def _one_round(self, index: int, running: _Running) -> None:
        probe = self._probes[index]
        try:
            observation = await probe.run_round()
        except asyncio.CancelledError:
            if not running.overran:
                raise  # the scheduler is stopping
            observation = self._failed(probe, running, "round overran its deadline")
        except Exception as exc:  # a probe bug must not stop the other checks
            log.exception("check %s: round failed", probe.check.id)
            observation = self._failed(probe, running, f"probe error: {exc}")
        finally:
            self._running[index] = None
        self._emit(observation)

    def _failed(self, probe: Probe, running: _Running, why: str) -> Observation:
        self.stats.rounds_failed += 1
        return Observation(
            check_id=probe.check.id,
            kind=WIRE_KIND[probe.check.kind],
            target=probe.check.target,
            start_unix_ns=running.start_unix_ns,
            duration_ns=time.monotonic_ns() - running.start_mono,
            outcome=pb.OUTCOME_ERROR,
            error_class=pb.ERROR_CLASS_LOCAL_ERROR,
            error_detail=why,
        )

    async def _finish(self, grace: float) -> None:
        self._heap.clear()
        tasks = {r.task for r in self._running if r is not None and r.task is not None}
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
