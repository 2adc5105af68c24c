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

    def covering(self, start_ns: int, end_ns: int) -> range:
        """The slots that ``[start_ns, end_ns)`` overlaps (clamped to the span)."""
        if end_ns <= max(start_ns, self.start_ns):
            return range(0)
        first = max(0, (start_ns - self.start_ns) // self.step_ns)
        last = min(self.count, (end_ns - 1 - self.start_ns) // self.step_ns + 1)
        return range(first, last) if first < last else range(0)

    def start_of(self, index: int) -> int:
        return self.start_ns + index * self.step_ns


def make_slots(start_ns: int, end_ns: int, step_ns: int) -> Slots:
    count = max(1, -(-(end_ns - start_ns) // step_ns))
    return Slots(start_ns, step_ns, count)


def round_spans(check: CheckRounds, hold_intervals: float) -> list[tuple[int, int, bool]]:
    """(start, end, ok) of each round: until the next round, at most ``hold`` intervals."""
    limit = int(check.interval_ns * hold_intervals)
    rounds = check.rounds
    spans = []
    for index, current in enumerate(rounds):
        end = current.start_ns + max(limit, current.duration_ns)
        if index + 1 < len(rounds):
            end = min(end, max(rounds[index + 1].start_ns, current.start_ns + 1))
        spans.append((current.start_ns, end, current.ok))
    return spans


def check_states(
    check: CheckRounds, slots: Slots, hold_intervals: float, confirm: int = 1
) -> tuple[bytearray, bytearray, list[tuple[int, int]]]:
    """The check's state per slot, as measured and as confirmed (with ``confirm`` > 1,
    a run of fewer failed rounds than that counts as passed: one lost SYN on a lossy
    link is not an outage), and the confirmed failures as exact (start, end) spans."""
    spans = round_spans(check, hold_intervals)
    oks = [ok for _, _, ok in spans]
    measured = paint(slots, [(a, b, OK if ok else FAIL) for a, b, ok in spans])
    failed = _confirmed_failures(oks, confirm)
    failures = [(a, b) for (a, b, _), f in zip(spans, failed, strict=True) if f]
    if failed == [not ok for ok in oks]:
        return measured, measured, failures
    confirmed = [(a, b, FAIL if f else OK) for (a, b, _), f in zip(spans, failed, strict=True)]
    return measured, paint(slots, confirmed), failures


def paint(slots: Slots, spans: Iterable[tuple[int, int, int]]) -> bytearray:
    """Each slot gets the value of the last span overlapping it (0 where none does).

    The hot loop of a run (one pass per round of every check): plain arithmetic and
    slice assignments, no calls per round.
    """
    states = bytearray(slots.count)
    origin, step, count = slots.start_ns, slots.step_ns, slots.count
    for start, end, value in spans:
        if end <= start or end <= origin:
            continue
        first = (start - origin) // step if start > origin else 0
        last = (end - 1 - origin) // step + 1
        if last > count:
            last = count
        if first < last:
            states[first:last] = bytes((value,)) * (last - first)
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
    """1 in every slot any of ``spans`` overlaps (added to ``into`` when given)."""
    marked = paint(slots, ((start, end, 1) for start, end in spans))
    if into is None:
        return marked
    union = int.from_bytes(into) | int.from_bytes(marked)  # bytewise OR of 0/1 slots
    into[:] = union.to_bytes(slots.count)
    return into


def mark_within(slots: Slots, spans: Iterable[tuple[int, int]]) -> bytearray:
    """1 in every slot that one of ``spans`` covers whole."""
    marked = bytearray(slots.count)
    origin, step = slots.start_ns, slots.step_ns
    for start, end in spans:
        first = max(0, -(-(start - origin) // step))  # the first slot starting in the span
        last = min(slots.count, (end - origin) // step)  # slots ending by the span's end
        if first < last:
            marked[first:last] = b"\x01" * (last - first)
    return marked
