"""A live table of what the collector has stored, for the terminal."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from collector.errors import StoreError
from collector.store.sqlite import connect


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


def check_summaries(db_path: Path, since_ns: int = 0) -> list[CheckSummary]:
    """Per check since ``since_ns``; the last outcome is that of the latest round."""
    conn = connect(db_path, readonly=True)
    try:
        rows = conn.execute(_QUERY, (since_ns,)).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a new store: nothing stored yet
            return []
        raise StoreError(f"cannot read store {db_path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read store {db_path}: {exc}") from None
    finally:
        conn.close()
    return [CheckSummary(*row[:10]) for row in rows]


def format_table(rows: list[CheckSummary]) -> str:
    header = (
        f"{'agent':<14} {'check':<22} {'kind':<5} {'target':<22} {'rounds':>6} "
        f"{'sent':>7} {'recv':>7} {'loss%':>7} {'rtt ms':>8}  last"
    )
    lines = [header, "-" * len(header)]
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
    if not rows:
        lines.append("(no observations stored yet)")
    return "\n".join(lines)
