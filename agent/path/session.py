"""Rounds of a trace: send every TTL each round, match answers, finish rounds in order.

Rounds start every ``interval`` seconds whatever the previous one is still
waiting for (as mtr does), and each probe waits ``timeout`` seconds for its
answer, so a lost probe never delays the next round. A round is finished
when each of its probes has an answer or has timed out; finished rounds are
handed on in order. The whole run stops at ``time_limit``; rounds not yet
finished by then are left out rather than counted with guessed losses.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.errors import ProbeSetupError
from agent.path.hops import Answer, AnswerKind, PathChange, PathTracker, RoundResult
from agent.path.trace import Flow, TraceSockets, build_probe, parse_reply


@dataclass(frozen=True, slots=True)
class PathSettings:
    flow: Flow
    count: int  # rounds
    interval: float  # seconds between round starts
    timeout: float  # seconds each probe waits for its answer
    max_ttl: int
    time_limit: float  # seconds for the whole run


@dataclass(slots=True)
class PathRun:
    """What a run produced so far: finished rounds in order and the path changes seen."""

    settings: PathSettings
    started_unix_ns: int
    rounds: list[RoundResult] = field(default_factory=list)
    changes: list[PathChange] = field(default_factory=list)
    stopped: str | None = None  # why the run ended early: "time limit" or "interrupted"
    duration_s: float = 0.0


@dataclass(slots=True)
class _Probe:
    round_index: int
    ttl: int
    sent_unix_ns: int
    deadline: float  # monotonic


class _Rounds:
    """Outstanding probes and unfinished rounds."""

    def __init__(self) -> None:
        self.probes: dict[int, _Probe] = {}  # by probe id, in send order
        self.pending: dict[int, tuple[RoundResult, int]] = {}  # index -> (round, outstanding)
        self._ids = itertools.cycle(range(1, 0x10000))

    def next_id(self) -> int:
        # 65535 ids; a wrap onto a probe still waiting skips it.
        for probe_id in itertools.islice(self._ids, 0xFFFF):
            if probe_id not in self.probes:
                return probe_id
        raise ProbeSetupError(
            "65535 probes are waiting for answers: use a shorter --timeout or a longer --interval"
        )

    def settle(self, probe_id: int) -> _Probe:
        probe = self.probes.pop(probe_id)
        result, outstanding = self.pending[probe.round_index]
        self.pending[probe.round_index] = (result, outstanding - 1)
        return probe

    def expire(self, now: float) -> None:
        # Probes are in send order and share one timeout: the oldest expire first.
        while self.probes:
            probe_id, probe = next(iter(self.probes.items()))
            if probe.deadline > now:
                return
            self.settle(probe_id)

    def finished(self) -> list[RoundResult]:
        """Rounds with nothing outstanding, in order, each given out once."""
        done = []
        while self.pending:
            index = min(self.pending)
            result, outstanding = self.pending[index]
            if outstanding > 0:
                break
            del self.pending[index]
            done.append(result)
        return done


def next_limit(result: RoundResult, limit: int, max_ttl: int) -> int:
    """How many TTLs the next round probes, from a finished round.

    Up to where the path ended; all the way again when the last TTL probed
    was answered by a router on the way (the path got longer).
    """
    end = result.end_ttl()
    if end is not None:
        return end
    last = result.answers.get(result.probed)
    if last is not None and last.kind == AnswerKind.TIME_EXCEEDED:
        return max_ttl
    return limit


def run_path(
    settings: PathSettings, on_round: Callable[[PathRun, PathChange | None], None]
) -> PathRun:
    """Run the trace's rounds; call ``on_round`` after each finished round."""
    run = PathRun(settings, time.time_ns())
    sockets = TraceSockets(settings.flow.probe)
    started = time.monotonic()
    try:
        _loop(settings, sockets, run, on_round, started)
    except KeyboardInterrupt:
        run.stopped = "interrupted"
    finally:
        sockets.close()
        run.duration_s = round(time.monotonic() - started, 3)
    return run


def _loop(
    settings: PathSettings,
    sockets: TraceSockets,
    run: PathRun,
    on_round: Callable[[PathRun, PathChange | None], None],
    started: float,
) -> None:
    flow, rounds, tracker = settings.flow, _Rounds(), PathTracker()
    limit, sent_rounds, next_round = settings.max_ttl, 0, started
    hard_stop = started + settings.time_limit
    while True:
        now = time.monotonic()
        if now >= hard_stop:
            run.stopped = "time limit"
            return
        if sent_rounds < settings.count and now >= next_round:
            _send_round(sockets, flow, rounds, sent_rounds, limit, settings.timeout)
            sent_rounds += 1
            next_round += settings.interval
        rounds.expire(now)
        for result in rounds.finished():
            limit = next_limit(result, limit, settings.max_ttl)
            change = tracker.update(result)
            run.rounds.append(result)
            if change is not None:
                run.changes.append(change)
            on_round(run, change)
        if sent_rounds >= settings.count and not rounds.pending:
            return
        wake = [hard_stop]
        if sent_rounds < settings.count:
            wake.append(next_round)
        if rounds.probes:
            wake.append(next(iter(rounds.probes.values())).deadline)
        _receive(sockets, flow, rounds, min(wake) - time.monotonic())


def _send_round(
    sockets: TraceSockets, flow: Flow, rounds: _Rounds, index: int, limit: int, timeout: float
) -> None:
    result = RoundResult(index, time.time_ns(), limit)
    rounds.pending[index] = (result, limit)
    for ttl in range(1, limit + 1):
        probe_id = rounds.next_id()
        packet = build_probe(flow, ttl, probe_id)
        try:
            sent_ns = sockets.send(packet, flow.target)
        except OSError:
            # Refused locally (no route, a firewall): it counts as sent and lost.
            sent_ns = time.time_ns()
        rounds.probes[probe_id] = _Probe(index, ttl, sent_ns, time.monotonic() + timeout)


def _receive(sockets: TraceSockets, flow: Flow, rounds: _Rounds, wait: float) -> None:
    for packet, received_ns in sockets.receive(wait):
        reply = parse_reply(packet, flow)
        if reply is None or reply.probe_id not in rounds.probes:
            continue  # not ours, a duplicate, or later than its timeout
        probe = rounds.settle(reply.probe_id)
        result = rounds.pending[probe.round_index][0]
        rtt = max(0, received_ns - probe.sent_unix_ns)
        result.answers[probe.ttl] = Answer(reply.source, rtt, reply.kind)
