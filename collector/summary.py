"""A live table of what the collector has stored, for the terminal: per check, then per
agent the time its batches cover and the batches it reports it dropped."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from collector.errors import StoreError
from collector.store.coverage import DropRecord, Interval, coverage, gaps, spool_drops
from collector.store.sqlite import connect

# Gaps and drop reports listed per agent; the rest are counted.
MAX_LISTED = 5


@dataclass(frozen=True, slots=True)
class CheckSummary:
    agent_id: str
    check_id: str
    kind: str
    target: str
    rounds: int
    sent: int
    received: int
    mean_rtt_ms: float | None
    last_outcome: str
    last_error_class: str

    @property
    def loss_percent(self) -> float | None:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else None


_QUERY = """
SELECT agent_id, check_id, kind, target, count(*), sum(packets_sent), sum(packets_received),
       sum(rtt_mean_ns * packets_received) / nullif(sum(packets_received), 0) / 1e6,
       outcome, error_class, max(start_ns)
FROM observations WHERE start_ns >= ?
GROUP BY agent_id, check_id ORDER BY agent_id, check_id
"""


@dataclass(frozen=True, slots=True)
class AgentCoverage:
    """What one agent's batch windows cover of ``[start_ns, end_ns)``."""

    agent_id: str
    start_ns: int
    end_ns: int
    intervals: list[Interval]
    drops: list[DropRecord]

    @property
    def covered_ns(self) -> int:
        return sum(e - s for s, e in self.intervals)

    @property
    def reported_until_ns(self) -> int | None:
        return self.intervals[-1][1] if self.intervals else None

    @property
    def gaps(self) -> list[Interval]:
        """Holes up to the last reported instant; after it, batches may still be on the way."""
        until = self.reported_until_ns
        return gaps(self.intervals, self.start_ns, until) if until is not None else []


@dataclass(frozen=True, slots=True)
class Summary:
    checks: list[CheckSummary]
    agents: list[AgentCoverage]


def check_summaries(db_path: Path, since_ns: int = 0, until_ns: int | None = None) -> Summary:
    """Per check, and per agent its coverage and drops, within ``[since_ns, until_ns)``.

    The last outcome of a check is that of its latest round. ``since_ns`` 0 means
    from each agent's first covered instant.
    """
    until = time.time_ns() if until_ns is None else until_ns
    conn = connect(db_path, readonly=True)
    try:
        rows = conn.execute(_QUERY, (since_ns,)).fetchall()
        agents = _agent_coverage(conn, since_ns, until)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a new store: nothing stored yet
            return Summary([], [])
        raise StoreError(f"cannot read store {db_path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read store {db_path}: {exc}") from None
    finally:
        conn.close()
    return Summary([CheckSummary(*row[:10]) for row in rows], agents)


def _agent_coverage(conn: sqlite3.Connection, since_ns: int, until_ns: int) -> list[AgentCoverage]:
    if conn.execute("PRAGMA user_version").fetchone()[0] < 3:
        return []  # read-only: a store from before coverage stays as it is until a collector runs
    agents = [row[0] for row in conn.execute("SELECT agent_id FROM agents ORDER BY agent_id")]
    result = []
    for agent_id in agents:
        intervals = coverage(conn, agent_id, since_ns, until_ns)
        start = since_ns or (intervals[0][0] if intervals else until_ns)
        drops = spool_drops(conn, agent_id, since_ns, until_ns)
        result.append(AgentCoverage(agent_id, start, until_ns, intervals, drops))
    return result


def format_table(summary: Summary) -> str:
    return "\n\n".join((_checks_table(summary.checks), _coverage_table(summary.agents)))


def _checks_table(rows: list[CheckSummary]) -> str:
    header = (
        f"{'agent':<14} {'check':<22} {'kind':<5} {'target':<22} {'rounds':>6} "
        f"{'sent':>7} {'recv':>7} {'loss%':>7} {'rtt ms':>8}  last"
    )
    lines = []
    for r in rows:
        loss = f"{r.loss_percent:.2f}" if r.loss_percent is not None else "-"
        rtt = f"{r.mean_rtt_ms:.3f}" if r.mean_rtt_ms is not None else "-"
        last = (
            r.last_outcome
            if r.last_error_class == "none"
            else f"{r.last_outcome} ({r.last_error_class})"
        )
        lines.append(
            f"{r.agent_id[:14]:<14} {r.check_id[:22]:<22} {r.kind:<5} "
            f"{r.target[:22]:<22} {r.rounds:>6} {r.sent:>7} {r.received:>7} "
            f"{loss:>7} {rtt:>8}  {last}"
        )
    return _table(header, lines, "(no observations stored yet)")


def _coverage_table(agents: list[AgentCoverage]) -> str:
    header = (
        f"{'agent':<14} {'covered s':>10} {'of span':>8} {'gaps':>5} {'longest gap s':>14} "
        f"{'reported until (UTC)':<20} {'dropped batches/obs':>20}"
    )
    lines = [line for agent in agents for line in _agent_lines(agent)]
    return _table(header, lines, "(no coverage stored yet)")


def _table(header: str, lines: list[str], empty: str) -> str:
    return "\n".join([header, "-" * len(header), *(lines or [empty])])


def _agent_lines(a: AgentCoverage) -> list[str]:
    span = a.end_ns - a.start_ns
    share = f"{100.0 * a.covered_ns / span:.2f}%" if span > 0 else "-"
    holes = a.gaps
    longest = f"{max(e - s for s, e in holes) / 1e9:.1f}" if holes else "-"
    until = _utc(a.reported_until_ns) if a.reported_until_ns is not None else "no windows"
    batches = sum(d.batches for d in a.drops)
    observations = sum(d.observations_lost for d in a.drops)
    lines = [
        f"{a.agent_id[:14]:<14} {a.covered_ns / 1e9:>10.1f} {share:>8} {len(holes):>5} "
        f"{longest:>14} {until:<20} {f'{batches}/{observations}':>20}"
    ]
    for start, end in holes[:MAX_LISTED]:
        lines.append(f"  gap  {_utc(start)} .. {_utc(end)} ({(end - start) / 1e9:.1f} s)")
    if len(holes) > MAX_LISTED:
        lines.append(f"  ... and {len(holes) - MAX_LISTED} more gaps")
    for d in a.drops[:MAX_LISTED]:
        covering = (
            f" of {_utc(d.window_start_ns)} .. {_utc(d.window_end_ns)}" if d.window_end_ns else ""
        )
        lines.append(
            f"  drop {_utc(d.dropped_ns)} {d.reason}: batches {d.first_sequence}..{d.last_sequence}"
            f" ({d.observations_lost} observations lost){covering}"
        )
    if len(a.drops) > MAX_LISTED:
        lines.append(f"  ... and {len(a.drops) - MAX_LISTED} more drop reports")
    return lines


def _utc(ns: int) -> str:
    try:
        return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):  # an agent's clock far off: show it raw
        return f"{ns} ns"
