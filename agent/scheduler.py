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

Checks can be added and retired while running (configuration pushed by the
collector): a new check's first round is due within one interval; a retired
check starts no new round, and a round it has in flight still reports.
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
        self._emit = emit
        self._jitter = jitter
        self.stats = SchedulerStats()
        # Slots: a retired check leaves None, reused once its last round ended.
        self._probes: list[Probe | None] = []
        self._running: list[_Running | None] = []
        self._free: list[int] = []
        # (when, tie-breaker, what, slot, the probe it starts | the round it ends)
        self._heap: list[tuple[float, int, int, int, Probe | _Running]] = []
        self._order = itertools.count()
        self._wakeup: asyncio.Future[None] | None = None
        self.add(probes)

    @property
    def check_count(self) -> int:
        return sum(1 for probe in self._probes if probe is not None)

    def add(self, probes: Sequence[Probe]) -> None:
        """Schedule new checks; each first round is due within one interval from now."""
        now = time.monotonic()
        for probe in probes:
            index = self._free.pop() if self._free else len(self._probes)
            if index == len(self._probes):
                self._probes.append(None)
                self._running.append(None)
            self._probes[index] = probe
            phase = phase_fraction(probe.check.id) * self._jitter * probe.check.interval
            self._push(now + phase, _START, index, probe)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)  # the new checks may be due before the timer

    def retire(self, check_ids: set[str]) -> None:
        """Stop scheduling these checks; rounds in flight still finish and report."""
        for index, probe in enumerate(self._probes):
            if probe is not None and probe.check.id in check_ids:
                self._probes[index] = None
                if self._running[index] is None:
                    self._free.append(index)

    async def run(self, finish_grace: float = 0.0) -> None:
        """Run until cancelled.

        On cancellation no new round starts; rounds already running get up to
        ``finish_grace`` seconds to finish and report, then are cancelled.
        """
        loop = asyncio.get_running_loop()
        try:
            while True:
                delay = self._heap[0][0] - loop.time() if self._heap else 3600.0
                if delay > 0:
                    await self._sleep(loop, delay)
                self._run_due(loop.time() + TICK)
        finally:
            await self._finish(finish_grace)

    async def _sleep(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if ``add`` brings something due earlier."""
        self._wakeup = loop.create_future()
        timer = loop.call_later(delay, _set_done, self._wakeup)
        try:
            await self._wakeup
        finally:
            # Cancel only a timer that has not fired: cancelling a fired one
            # still counts as a cancellation in asyncio's bookkeeping and makes
            # it rebuild its timer heap needlessly.
            if loop.time() < timer.when():
                timer.cancel()
            self._wakeup = None

    def _push(self, when: float, what: int, index: int, payload: Probe | _Running) -> None:
        heapq.heappush(self._heap, (when, next(self._order), what, index, payload))

    def _run_due(self, horizon: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= horizon:
            when, _, what, index, payload = heapq.heappop(heap)
            if what == _START:
                if self._probes[index] is payload:  # not retired, nor the slot reused
                    self._start_round(index, when, horizon)
            elif (
                isinstance(payload, _Running)
                and payload.task is not None
                and not payload.task.done()
            ):
                payload.overran = True
                payload.task.cancel()

    def _start_round(self, index: int, due: float, horizon: float) -> None:
        probe = self._probes[index]
        assert probe is not None
        interval = probe.check.interval
        if self._running[index] is not None:
            self.stats.rounds_skipped += 1
            log.warning("check %s: previous round still running, skipped", probe.check.id)
        else:
            running = _Running()
            self._running[index] = running
            running.task = asyncio.create_task(self._one_round(index, probe, running))
            self._push(due + round_deadline(probe), _DEADLINE, index, running)
            self.stats.rounds_started += 1
        next_due = due + interval
        if horizon - next_due > interval:  # the loop was stalled (suspend, overload): realign
            missed = int((horizon - next_due) // interval) + 1
            self.stats.rounds_skipped += missed
            next_due += missed * interval
        self._push(next_due, _START, index, probe)

    async def _one_round(self, index: int, probe: Probe, running: _Running) -> None:
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
            if self._probes[index] is None:
                self._free.append(index)  # retired while this round ran
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


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
