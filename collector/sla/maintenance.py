"""Which maintenance downtime a policy excludes, and which counts, with the reason.

A down span inside a maintenance window is judged by the window and the
policy: announced late enough (``notice``)? inside the hours when planned
maintenance is not allowed (``blackout``, in the policy's time zone)? an
emergency (``emergency_excluded``)? a patch that stayed short
(``patch_max``)? And what is excluded draws on a monthly allowance
(``monthly_allowance``), in time order: beyond it, maintenance counts.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

from collector.sla.model import HOUR, MINUTE, MaintenanceKind, MaintenanceWindow
from collector.sla.policy import Blackout, Policy
from collector.sla.timeline import ItemSpan, State

Part = tuple[int, int, bool, str]  # start, end, accepted (excluded), why


class MaintenanceJudge:
    def __init__(self, policy: Policy, spans: Sequence[ItemSpan] = ()) -> None:
        self._policy = policy
        self._rule = policy.maintenance
        self._spans = spans
        # What is left of each calendar month's allowance, by month.
        self._allowance_left: dict[str, int] = {}

    def split(self, span: ItemSpan) -> list[Part]:
        """Judge a down span inside a maintenance window; call in time order (the
        allowance is used up in time order, per calendar month)."""
        window = span.window
        assert window is not None
        refusal = self._refusal(window)
        if refusal is not None:
            return [(span.start_ns, span.end_ns, False, refusal)]
        # Blackout hours restrict when *planned* work may happen, not emergencies.
        planned = window.kind is not MaintenanceKind.EMERGENCY
        pieces = (
            self._blackout_split(span.start_ns, span.end_ns)
            if planned
            else [(span.start_ns, span.end_ns, True)]
        )
        parts: list[Part] = []
        for start, end, allowed in pieces:
            if not allowed:
                parts.append((start, end, False, self._blackout_reason()))
            else:
                parts += self._draw_allowance(start, end)
        return parts

    def _refusal(self, window: MaintenanceWindow) -> str | None:
        """Why this window cannot be excluded at all, or None."""
        if window.kind is MaintenanceKind.EMERGENCY:
            return None if self._rule.emergency_excluded else "emergency maintenance counts"
        if window.kind is MaintenanceKind.PATCH and self._rule.patch_max_ns is not None:
            down = self._down_within(window)
            if down > self._rule.patch_max_ns:
                return (
                    f"the patch's downtime ({down / MINUTE:.1f} min) exceeded "
                    f"{self._rule.patch_max_ns / MINUTE:g} minutes"
                )
            return None
        ahead = window.start_ns - window.announced_ns
        if self._rule.notice_ns > 0 and ahead < self._rule.notice_ns:
            return (
                f"announced {ahead / HOUR:.1f} h ahead; planned maintenance needs "
                f"{self._rule.notice_ns / HOUR:g} h notice"
            )
        return None

    def _down_within(self, window: MaintenanceWindow) -> int:
        return sum(
            min(s.end_ns, window.end_ns) - max(s.start_ns, window.start_ns)
            for s in self._spans
            if s.state == State.DOWN and s.start_ns < window.end_ns and window.start_ns < s.end_ns
        )

    def _blackout_split(self, start: int, end: int) -> list[tuple[int, int, bool]]:
        """The span cut at blackout boundaries: (start, end, allowed)."""
        blackout = self._rule.blackout
        if blackout is None:
            return [(start, end, True)]
        cuts = sorted({start, end, *_blackout_edges(blackout, self._policy, start, end)})
        return [
            (a, b, not _in_blackout(blackout, self._policy, a)) for a, b in itertools.pairwise(cuts)
        ]

    def _blackout_reason(self) -> str:
        b = self._rule.blackout
        assert b is not None
        days = ", ".join(
            ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[d] for d in sorted(b.weekdays)
        )
        return (
            f"inside {days} {b.start_minute // 60:02d}:{b.start_minute % 60:02d}-"
            f"{b.end_minute // 60:02d}:{b.end_minute % 60:02d} ({self._policy.timezone}), "
            "when planned maintenance is not allowed"
        )

    def _draw_allowance(self, start: int, end: int) -> list[Part]:
        excluded_why = self._rule.why or "accepted maintenance"
        allowance = self._rule.monthly_allowance_ns
        if allowance is None:
            return [(start, end, True, excluded_why)]
        month = _local(self._policy, start).strftime("%Y-%m")
        left = self._allowance_left.setdefault(month, allowance)
        take = min(end - start, left)
        self._allowance_left[month] = left - take
        parts: list[Part] = []
        if take > 0:
            parts.append((start, start + take, True, excluded_why))
        if start + take < end:
            why = f"beyond the {allowance / HOUR:g} h monthly maintenance allowance"
            parts.append((start + take, end, False, why))
        return parts


def _local(policy: Policy, ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=policy.zone)


def _in_blackout(blackout: Blackout, policy: Policy, ns: int) -> bool:
    moment = _local(policy, ns)
    minute = moment.hour * 60 + moment.minute
    return (
        moment.weekday() in blackout.weekdays
        and blackout.start_minute <= minute < blackout.end_minute
    )


def _blackout_edges(blackout: Blackout, policy: Policy, start: int, end: int) -> list[int]:
    """Where blackout hours begin and end between ``start`` and ``end`` (local wall time,
    so a DST change moves them correctly)."""
    edges: list[int] = []
    day = _local(policy, start).date() - dt.timedelta(days=1)
    last = _local(policy, end).date() + dt.timedelta(days=1)
    while day <= last:
        for minute in (blackout.start_minute, blackout.end_minute):
            moment = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minute)
            ns = int(moment.replace(tzinfo=policy.zone).timestamp()) * 10**9
            if start < ns < end:
                edges.append(ns)
        day += dt.timedelta(days=1)
    return edges
