"""The signals attribution reads, loaded from the store for a span of time.

Per check: its rounds (outcome, error class, when the batch carrying each
arrived: late arrival means backfill). Per agent: host-check rounds (findings,
inbound packet rate), egress-loss rounds (verdict toward the egress hop and
beyond it), and coverage (when the agent ran, as its batches' windows say).
Reads only; any connection, a read-only one is enough.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from collector.attribution.model import Topology
from collector.attribution.topology import item_place
from collector.sla.model import MINUTE, SECOND
from collector.store.windows import list_windows

__all__ = ["CheckRounds", "EgressRound", "HostRound", "Round", "Signals", "load_signals"]

# Rounds are read from this long before the span: the first slot needs the round
# before it, and a host's traffic baseline needs its recent past.
LOOKBACK_NS = 15 * MINUTE
DEFAULT_INTERVAL_NS = MINUTE


@dataclass(frozen=True, slots=True)
class Round:
    start_ns: int
    duration_ns: int
    ok: bool
    outcome: str
    error_class: str
    # When the batch carrying it reached the collector (0: imported, unknown).
    received_ns: int


@dataclass(frozen=True, slots=True)
class CheckRounds:
    agent_id: str
    check_id: str
    kind: str
    target: str
    # The check's interval as its rounds show it (median gap between starts).
    interval_ns: int
    rounds: tuple[Round, ...]


@dataclass(frozen=True, slots=True)
class HostRound:
    start_ns: int
    # (kind, subject) of each finding: ("disk_full", "/srv"), ("process_missing", "nginx")
    findings: tuple[tuple[str, str], ...]
    # Inbound packets per second over every interface the check reads.
    rx_packets_per_second: float


@dataclass(frozen=True, slots=True)
class EgressRound:
    start_ns: int
    end_ns: int
    verdict: str  # clear, undecided, excess, rate_limited
    threshold: float
    loss_lower: float
    loss_upper: float
    # Loss toward the address beyond the egress hop, when probed.
    beyond_lower: float | None
    beyond_upper: float | None
    target: str


@dataclass(frozen=True, slots=True)
class Signals:
    checks: dict[tuple[str, str], CheckRounds]
    host: dict[str, tuple[HostRound, ...]] = field(default_factory=dict)  # by agent
    host_interval_ns: dict[str, int] = field(default_factory=dict)
    egress: dict[str, tuple[EgressRound, ...]] = field(default_factory=dict)  # by agent
    coverage: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    # Maintenance windows per service item: (start, end, note).
    maintenance: dict[str, tuple[tuple[int, int, str], ...]] = field(default_factory=dict)


_ROUNDS = """
SELECT o.check_id, o.kind, o.target, o.start_ns, o.duration_ns, o.outcome, o.error_class,
       ifnull(b.received_ns, 0), CASE WHEN o.kind IN ('host', 'egress_loss')
                                      THEN o.detail_json END
FROM observations o
LEFT JOIN batches b ON b.agent_id = o.agent_id AND b.sequence_epoch = o.sequence_epoch
                   AND b.sequence = o.sequence
WHERE o.agent_id = ? AND o.start_ns >= ? AND o.start_ns < ?
ORDER BY o.check_id, o.start_ns
"""


def load_signals(
    conn: sqlite3.Connection, topology: Topology, start_ns: int, end_ns: int
) -> Signals:
    checks: dict[tuple[str, str], CheckRounds] = {}
    host: dict[str, tuple[HostRound, ...]] = {}
    host_interval: dict[str, int] = {}
    egress: dict[str, tuple[EgressRound, ...]] = {}
    coverage: dict[str, tuple[tuple[int, int], ...]] = {}
    for agent_id in sorted(topology.agent_nodes):
        rows = conn.execute(_ROUNDS, (agent_id, start_ns - LOOKBACK_NS, end_ns)).fetchall()
        host_rounds: list[HostRound] = []
        egress_rounds: list[EgressRound] = []
        # By check id alone: an inventory edit that changes a check's kind or target
        # within the span keeps one series; the newest round says what it is now.
        for check_id, group in itertools.groupby(rows, key=lambda r: r[0]):
            found = list(group)
            kind, target = found[-1][1], found[-1][2]
            rounds = tuple(Round(r[3], r[4], r[5] == "ok", r[5], r[6], r[7]) for r in found)
            interval = median_gap(r.start_ns for r in rounds)
            checks[(agent_id, check_id)] = CheckRounds(
                agent_id, check_id, kind, target, interval, rounds
            )
            host_rounds += (_host_round(r[3], r[8]) for r in found if r[1] == "host")
            egress_rounds += (
                _egress_round(r[3], r[4], r[8], r[2]) for r in found if r[1] == "egress_loss"
            )
            if kind == "host":
                host_interval[agent_id] = interval
        host[agent_id] = tuple(sorted(host_rounds, key=lambda h: h.start_ns))
        egress[agent_id] = tuple(sorted(egress_rounds, key=lambda e: e.start_ns))
        coverage[agent_id] = tuple(
            conn.execute(
                "SELECT start_ns, end_ns FROM coverage WHERE agent_id=? AND end_ns>? "
                "AND start_ns<? ORDER BY start_ns",
                (agent_id, start_ns - LOOKBACK_NS, end_ns),
            ).fetchall()
        )
    return Signals(
        checks,
        host,
        host_interval,
        egress,
        coverage,
        _maintenance(conn, topology, start_ns, end_ns),
    )


def _maintenance(
    conn: sqlite3.Connection, topology: Topology, start_ns: int, end_ns: int
) -> dict[str, tuple[tuple[int, int, str], ...]]:
    """Per item, the windows in force whose scope takes it in (a node window covers the
    VMs on it, a segment window every node in it ...)."""
    windows = list_windows(conn, since_ns=start_ns - LOOKBACK_NS, until_ns=end_ns)
    found: dict[str, tuple[tuple[int, int, str], ...]] = {}
    for item_id in topology.items:
        place = item_place(topology, item_id)
        mine = tuple(
            (w.start_ns, w.end_ns, w.note or f"{w.kind} maintenance")
            for w in windows
            if place.covered_by(w)
        )
        if mine:
            found[item_id] = mine
    return found


def median_gap(starts: Iterable[int]) -> int:
    """A check's interval as its rounds show it: the median gap between starts (an
    outage makes a few long gaps, not a different median)."""
    ordered = list(starts)
    if len(ordered) < 2:
        return DEFAULT_INTERVAL_NS
    return max(SECOND, statistics.median_low(b - a for a, b in itertools.pairwise(ordered)))


def _detail(text: str | None, kind: str) -> dict[str, object]:
    if not text:
        return {}
    try:
        body = json.loads(text).get(kind, {})
    except (ValueError, AttributeError):
        return {}
    return body if isinstance(body, dict) else {}


def _host_round(start_ns: int, detail_text: str | None) -> HostRound:
    detail = _detail(detail_text, "host")
    findings = tuple(
        (str(f.get("kind", "")).removeprefix("KIND_").lower(), str(f.get("subject", "")))
        for f in _dicts(detail.get("findings"))
    )
    rx = sum(_number(i.get("rx_packets_per_second")) for i in _dicts(detail.get("interfaces")))
    return HostRound(start_ns, findings, rx)


def _egress_round(
    start_ns: int, duration_ns: int, detail_text: str | None, target: str
) -> EgressRound:
    detail = _detail(detail_text, "egress_loss")
    beyond = detail.get("beyond")
    probed = isinstance(beyond, dict) and bool(beyond.get("sent"))
    beyond = beyond if isinstance(beyond, dict) else {}
    return EgressRound(
        start_ns=start_ns,
        end_ns=start_ns + duration_ns,
        verdict=str(detail.get("verdict", "unspecified")).removeprefix("VERDICT_").lower(),
        threshold=_number(detail.get("threshold_ratio")),
        loss_lower=_number(detail.get("loss_lower_ratio")),
        loss_upper=_number(detail.get("loss_upper_ratio")),
        beyond_lower=_number(beyond.get("loss_lower_ratio")) if probed else None,
        beyond_upper=_number(beyond.get("loss_upper_ratio")) if probed else None,
        target=target,
    )


def _dicts(value: object) -> list[dict[str, object]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
