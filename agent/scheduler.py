"""Owns timing: runs every check's rounds on its interval, with jitter and no drift.

* No drift: round k of a check is due at ``origin + phase + k * interval``,
  computed from the start, never from when the previous round ended.
* Jitter: each check gets a fixed phase in ``[0, jitter * interval)`` derived
  from its id, so a thousand checks do not fire in the same millisecond and a
  restart keeps the same spread.
* Isolation: every round runs in its own task with its own deadline. A slow
  round delays nothing else; if it is still running when its next round is
  due, that next round is skipped and counted, never queued up.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.observation import Observation
from agent.probes.base import Probe
from slawatch.v1 import observation_pb2 as pb

log = logging.getLogger(__name__)

# A round may overrun its own timeout by this much before the scheduler stops it.
DEADLINE_GRACE = 1.0

_KIND = {
    "icmp": pb.CHECK_KIND_ICMP,
    "tcp": pb.CHECK_KIND_TCP,
}


def phase_fraction(check_id: str) -> float:
    """A stable number in [0, 1) for a check id."""
    digest = hashlib.blake2b(check_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(slots=True)
class SchedulerStats:
    rounds_started: int = 0
    rounds_skipped: int = 0
    rounds_failed: int = 0


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
        self._rounds: set[asyncio.Task[None]] = set()

    async def run(self, finish_grace: float = 0.0) -> None:
        """Run until cancelled.

        On cancellation no new round starts; rounds already running get up to
        ``finish_grace`` seconds to finish and report, then are cancelled.
        """
        origin = asyncio.get_running_loop().time()
        loops = [asyncio.create_task(self._check_loop(p, origin)) for p in self._probes]
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            if self._rounds and finish_grace > 0:
                await asyncio.wait(set(self._rounds), timeout=finish_grace)
            for task in list(self._rounds):
                task.cancel()
            await asyncio.gather(*self._rounds, return_exceptions=True)

    async def _check_loop(self, probe: Probe, origin: float) -> None:
        loop = asyncio.get_running_loop()
        interval = probe.check.interval
        due = origin + phase_fraction(probe.check.id) * self._jitter * interval
        running: asyncio.Task[None] | None = None
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            if running is not None and not running.done():
                self.stats.rounds_skipped += 1
                log.warning("check %s: previous round still running, skipped", probe.check.id)
            else:
                running = asyncio.create_task(self._one_round(probe))
                self._rounds.add(running)
                running.add_done_callback(self._rounds.discard)
                self.stats.rounds_started += 1
            due += interval
            behind = loop.time() - due
            if behind > interval:  # the loop was stalled (suspend, overload): realign
                missed = int(behind // interval) + 1
                self.stats.rounds_skipped += missed
                due += missed * interval

    async def _one_round(self, probe: Probe) -> None:
        check = probe.check
        deadline = (check.packets - 1) * check.spacing + check.timeout + DEADLINE_GRACE
        start_unix_ns, start_mono = time.time_ns(), time.monotonic_ns()
        try:
            async with asyncio.timeout(deadline):
                observation = await probe.run_round()
        except TimeoutError:
            observation = self._failed(probe, start_unix_ns, start_mono, "round overran deadline")
        except Exception as exc:  # a probe bug must not stop the other checks
            log.exception("check %s: round failed", check.id)
            observation = self._failed(probe, start_unix_ns, start_mono, f"probe error: {exc}")
        self._emit(observation)

    def _failed(self, probe: Probe, start_unix_ns: int, start_mono: int, why: str) -> Observation:
        self.stats.rounds_failed += 1
        return Observation(
            check_id=probe.check.id,
            kind=_KIND[probe.check.kind.value],
            target=probe.check.target,
            start_unix_ns=start_unix_ns,
            duration_ns=time.monotonic_ns() - start_mono,
            outcome=pb.OUTCOME_ERROR,
            error_class=pb.ERROR_CLASS_LOCAL_ERROR,
            error_detail=why,
        )
