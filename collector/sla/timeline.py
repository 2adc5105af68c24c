"""From check results to the item's timeline: down (with a cause), up, or unknown.

Per check, the policy's downtime rule turns its samples into down and up
spans (the rest is unknown). Across the item's checks, the item is down where
any check is down (two checks failing at once count once), up where no check
is down and one is known up, and unknown where no check says anything.

Causes: an operator's override wins, then a maintenance window, then the
cause of the failing run that started first (ties: a known cause, in the
order of ``Cause``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import groupby, pairwise

from collector.sla.model import Cause, CheckKey, MaintenanceWindow, Override, Sample
from collector.sla.policy import DowntimeMode, DowntimeRule


class State:
    DOWN = "down"
    UP = "up"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CheckSpan:
    """A span of one check: down or up; for down, its cause and where its run began."""

    start_ns: int
    end_ns: int
    down: bool
    cause: Cause | None = None
    run_start_ns: int = 0


@dataclass(frozen=True, slots=True)
class ItemSpan:
    start_ns: int
    end_ns: int
    state: str
    cause: Cause = Cause.UNKNOWN
    cause_source: str = ""
    # Inside a maintenance window: the cause the results themselves give (when the
    # window is not accepted, that cause's rule applies), and the window.
    observed: Cause = Cause.UNKNOWN
    window: MaintenanceWindow | None = None


def check_spans(samples: Sequence[Sample], rule: DowntimeRule) -> list[CheckSpan]:
    """One check's samples (sorted by start) as down and up spans."""
    if rule.mode == DowntimeMode.CONSECUTIVE:
        return _consecutive(samples, rule)
    return _held(samples, rule)


def _reach(samples: Sequence[Sample], index: int, hold_intervals: float) -> int:
    """Where sample ``index`` stops standing: the next sample, or its hold limit."""
    sample = samples[index]
    limit = sample.start_ns + int(sample.interval_ns * hold_intervals)
    if index + 1 < len(samples):
        return min(samples[index + 1].start_ns, limit)
    return limit


def _held(samples: Sequence[Sample], rule: DowntimeRule) -> list[CheckSpan]:
    spans: list[CheckSpan] = []
    run_start = 0
    for index, sample in enumerate(samples):
        end = _reach(samples, index, rule.hold_intervals)
        previous = spans[-1] if spans else None
        continues = previous is not None and previous.down and previous.end_ns == sample.start_ns
        if not sample.ok and not continues:
            run_start = sample.start_ns
        spans.append(CheckSpan(sample.start_ns, end, not sample.ok, sample.cause, run_start))
    return _drop_short_runs(_run_causes(spans), rule.min_outage_ns)


def _run_causes(spans: list[CheckSpan]) -> list[CheckSpan]:
    """A run of failures has one cause: the first one known in it (as in Sonoran's
    consecutive mode), so a round without a cause does not split an outage."""
    result: list[CheckSpan] = []
    for (down, _run), group in groupby(spans, key=lambda s: (s.down, s.run_start_ns)):
        run = list(group)
        if down:
            cause = next((s.cause for s in run if s.cause is not None), None)
            run = [CheckSpan(s.start_ns, s.end_ns, True, cause, s.run_start_ns) for s in run]
        result += run
    return result


def _drop_short_runs(spans: list[CheckSpan], min_outage_ns: int) -> list[CheckSpan]:
    """Down runs shorter than the policy's minimum outage are not recorded: up."""
    if min_outage_ns <= 0:
        return spans
    result: list[CheckSpan] = []
    for (down, run_start), group in groupby(spans, key=lambda s: (s.down, s.run_start_ns)):
        run = list(group)
        if down and run[-1].end_ns - run_start < min_outage_ns:
            run = [CheckSpan(s.start_ns, s.end_ns, False) for s in run]
        result += run
    return result


def _consecutive(samples: Sequence[Sample], rule: DowntimeRule) -> list[CheckSpan]:
    """Sonoran: N or more consecutive failed tests are downtime from the first to the
    last failed test; everything else a test covers (one interval) is up."""
    known = [
        CheckSpan(s.start_ns, _reach(samples, i, rule.hold_intervals), False)
        for i, s in enumerate(samples)
    ]
    downs: list[CheckSpan] = []
    for run in _failed_runs(samples, rule.hold_intervals):
        if len(run) < rule.min_consecutive_failures:
            continue  # a single failed test is not downtime
        first, last = run[0].start_ns, run[-1].start_ns
        if last - first < rule.min_outage_ns or last == first:
            continue  # "downtime of less than 5 minutes is not recorded"
        cause = next((s.cause for s in run if s.cause is not None), None)
        downs.append(CheckSpan(first, last, True, cause, first))
    return _overlay(known, downs)


def _failed_runs(samples: Sequence[Sample], hold_intervals: float) -> Iterable[list[Sample]]:
    """Runs of consecutive failed samples; a gap without results ends a run."""
    run: list[Sample] = []
    for index, sample in enumerate(samples):
        gap = bool(run) and _reach(samples, index - 1, hold_intervals) < sample.start_ns
        if sample.ok or gap:
            if run:
                yield run
            run = []
        if not sample.ok:
            run.append(sample)
    if run:
        yield run


def _overlay(known: list[CheckSpan], downs: list[CheckSpan]) -> list[CheckSpan]:
    """The up spans with the down spans laid over them."""
    result: list[CheckSpan] = []
    down_index = 0
    for span in known:
        cursor = span.start_ns
        while down_index < len(downs) and downs[down_index].end_ns <= cursor:
            down_index += 1
        for down in downs[down_index:]:
            if down.start_ns >= span.end_ns:
                break
            if down.start_ns > cursor:
                result.append(CheckSpan(cursor, down.start_ns, False))
            cursor = max(cursor, min(down.end_ns, span.end_ns))
        if cursor < span.end_ns:
            result.append(CheckSpan(cursor, span.end_ns, False))
    result += downs
    result.sort(key=lambda s: (s.start_ns, s.down))
    return result


# -- across checks -----------------------------------------------------------


def item_spans(
    spans_by_check: dict[CheckKey, list[CheckSpan]],
    start_ns: int,
    end_ns: int,
    overrides: Sequence[Override] = (),
    maintenance: Sequence[MaintenanceWindow] = (),
) -> list[ItemSpan]:
    """The item's state over ``[start_ns, end_ns)``, merged into maximal spans."""
    bounds = {start_ns, end_ns}
    for spans in spans_by_check.values():
        bounds.update(p for s in spans for p in (s.start_ns, s.end_ns))
    bounds.update(p for o in overrides for p in (o.start_ns, o.end_ns))
    bounds.update(p for m in maintenance for p in (m.start_ns, m.end_ns))
    points = sorted(p for p in bounds if start_ns <= p <= end_ns)
    result: list[ItemSpan] = []
    active = _ActiveSpans(spans_by_check)
    for left, right in pairwise(points):
        span = _classify(left, right, active.at(left), overrides, maintenance)
        last = result[-1] if result else None
        if last and last.end_ns == left and _same(last, span):
            result[-1] = replace(last, end_ns=right)
        else:
            result.append(span)
    return result


def _same(a: ItemSpan, b: ItemSpan) -> bool:
    return (a.state, a.cause, a.cause_source, a.observed, a.window) == (
        b.state, b.cause, b.cause_source, b.observed, b.window,
    )  # fmt: skip


class _ActiveSpans:
    """The check spans covering a point, for points visited in increasing order."""

    def __init__(self, spans_by_check: dict[CheckKey, list[CheckSpan]]) -> None:
        self._pending = sorted(
            (s for spans in spans_by_check.values() for s in spans), key=lambda s: s.start_ns
        )
        self._next = 0
        self._open: list[tuple[int, int, CheckSpan]] = []  # heap by end
        self._order = 0

    def at(self, point: int) -> list[CheckSpan]:
        while self._next < len(self._pending) and self._pending[self._next].start_ns <= point:
            span = self._pending[self._next]
            self._order += 1
            heapq.heappush(self._open, (span.end_ns, self._order, span))
            self._next += 1
        while self._open and self._open[0][0] <= point:
            heapq.heappop(self._open)
        return [span for _, _, span in self._open]


def _classify(
    left: int,
    right: int,
    covering: list[CheckSpan],
    overrides: Sequence[Override],
    maintenance: Sequence[MaintenanceWindow],
) -> ItemSpan:
    downs = [s for s in covering if s.down]
    if not downs:
        state = State.UP if covering else State.UNKNOWN
        return ItemSpan(left, right, state)
    override = next((o for o in overrides if o.start_ns <= left and right <= o.end_ns), None)
    if override is not None:
        return ItemSpan(left, right, State.DOWN, override.cause, f"override: {override.reason}",
                        override.cause)  # fmt: skip
    observed = min(downs, key=_precedence).cause or Cause.UNKNOWN
    window = next((m for m in maintenance if m.start_ns <= left and right <= m.end_ns), None)
    if window is not None:
        source = f"maintenance ({window.kind})" + (f": {window.note}" if window.note else "")
        return ItemSpan(left, right, State.DOWN, Cause.MAINTENANCE, source, observed, window)
    return ItemSpan(left, right, State.DOWN, observed, "observation", observed)


_CAUSE_ORDER = {cause: index for index, cause in enumerate(Cause)}


def _precedence(span: CheckSpan) -> tuple[int, int]:
    """The failure that began first decides; at the same moment, a known cause beats
    none, and causes rank in the order of ``Cause`` (so the input order never matters)."""
    rank = _CAUSE_ORDER[span.cause] if span.cause is not None else len(_CAUSE_ORDER)
    return (span.run_start_ns, rank)
