"""Time as slots of one check interval, and each signal's state per slot.

Attribution decides at the resolution of the checks: the span is cut into
slots as long as the shortest interval of any service item's check, and every
signal gets one state per slot. A round stands from its start until the next
round of its check, or for ``hold`` intervals when none follows (a round that
was never run is not evidence either way); where rounds of one check overlap a
slot, the latest one decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from collector.attribution.signals import CheckRounds

# Per-slot states of a check, a service item (its customer view) or a node.
NONE, OK, FAIL = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Slots:
    start_ns: int
    step_ns: int
    count: int

    def index(self, t_ns: int) -> int:
        """The slot holding ``t_ns`` (clamped to the span)."""
        return min(self.count, max(0, (t_ns - self.start_ns) // self.step_ns))

    def covering(self, start_ns: int, end_ns: int) -> range:
        """The slots that ``[start_ns, end_ns)`` overlaps."""
        if end_ns <= start_ns:
            return range(0)
        first = self.index(start_ns)
        last = self.index(end_ns - 1) + 1 if end_ns - 1 >= self.start_ns else 0
        return range(first, min(last, self.count))

    def start_of(self, index: int) -> int:
        return self.start_ns + index * self.step_ns


def make_slots(start_ns: int, end_ns: int, step_ns: int) -> Slots:
    count = max(1, -(-(end_ns - start_ns) // step_ns))
    return Slots(start_ns, step_ns, count)


def round_spans(check: CheckRounds, hold_intervals: float) -> Iterable[tuple[int, int, bool]]:
    """(start, end, ok) of each round: until the next round, at most ``hold`` intervals."""
    limit = int(check.interval_ns * hold_intervals)
    rounds = check.rounds
    for index, current in enumerate(rounds):
        end = current.start_ns + max(limit, current.duration_ns)
        if index + 1 < len(rounds):
            end = min(end, max(rounds[index + 1].start_ns, current.start_ns + 1))
        yield current.start_ns, end, current.ok


def check_states(
    check: CheckRounds, slots: Slots, hold_intervals: float, confirm: int = 1
) -> bytearray:
    """The check's state per slot. With ``confirm`` > 1, a run of fewer failed rounds
    than that counts as passed: one lost SYN on a lossy link is not an outage."""
    states = bytearray(slots.count)
    spans = list(round_spans(check, hold_intervals))
    confirmed = _confirmed_failures([ok for _, _, ok in spans], confirm)
    for (start, end, _ok), failed in zip(spans, confirmed, strict=True):
        value = FAIL if failed else OK
        for k in slots.covering(start, end):
            states[k] = value
    return states


def _confirmed_failures(oks: list[bool], confirm: int) -> list[bool]:
    failed = [not ok for ok in oks]
    if confirm <= 1:
        return failed
    index = 0
    while index < len(failed):
        if not failed[index]:
            index += 1
            continue
        end = index
        while end < len(failed) and failed[end]:
            end += 1
        if end - index < confirm:
            failed[index:end] = [False] * (end - index)
        index = end
    return failed


def mark(
    slots: Slots, spans: Iterable[tuple[int, int]], into: bytearray | None = None
) -> bytearray:
    """1 in every slot any of ``spans`` overlaps."""
    marked = into if into is not None else bytearray(slots.count)
    for start, end in spans:
        for k in slots.covering(start, end):
            marked[k] = 1
    return marked
