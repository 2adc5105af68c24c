"""What the SLA engine evaluates, read from the store: service items and, per item and
span, its evidence (samples of its checks, maintenance, tickets, overrides).

Reads only (any connection: a read-only one is enough); the rows come from
``slawatch-collector import`` (collector/store/sla_tables.py), from agents, and
the causes of agents' failed rounds from attribution's stored verdicts
(collector/store/incidents.py). Only sqlite3, the domain model and the store's
row readers: the engine imports this, never the reverse.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import sqlite3
import statistics
from decimal import Decimal

from collector.errors import ConfigError
from collector.sla.model import (
    DAY,
    MINUTE,
    Cause,
    CheckKey,
    Evidence,
    ItemPlace,
    MaintenanceWindow,
    Override,
    Sample,
    ServiceItem,
    Ticket,
)
from collector.store.incidents import ItemVerdict, item_verdicts
from collector.store.places import stored_place
from collector.store.windows import list_windows

__all__ = ["DEFAULT_INTERVAL_NS", "LOOKBACK_NS", "load_evidence", "load_item", "load_items"]

# Evidence starts this long before the span: an outage that began before a month
# starts is still one outage, and the first sample of the month needs the one before.
LOOKBACK_NS = DAY
# A check's interval when neither the store nor its samples tell (fewer than two).
DEFAULT_INTERVAL_NS = MINUTE

_ITEMS = """
SELECT id, name, policy, monthly_fee, currency, prior_invoice, good_standing
FROM service_items WHERE ?1 IS NULL OR id = ?1 ORDER BY id
"""


def load_items(conn: sqlite3.Connection) -> list[ServiceItem]:
    """Every stored service item, by id."""
    return _items(conn, None)


def load_item(conn: sqlite3.Connection, item_id: str) -> ServiceItem:
    """The stored service item ``item_id``; ConfigError naming it when there is none."""
    found = _items(conn, item_id)
    if not found:
        raise ConfigError(
            f"no service item {item_id!r} in the store "
            "(service items come from `slawatch-collector import`, docs/import-format.md)"
        )
    return found[0]


def _items(conn: sqlite3.Connection, item_id: str | None) -> list[ServiceItem]:
    checks: dict[tuple[str, str], list[CheckKey]] = {}
    for owner, role, agent_id, check_id in conn.execute(
        "SELECT item_id, role, agent_id, check_id FROM service_item_checks "
        "WHERE ?1 IS NULL OR item_id = ?1 ORDER BY item_id, agent_id, check_id",
        (item_id,),
    ):
        checks.setdefault((owner, role), []).append(CheckKey(agent_id, check_id))
    return [
        ServiceItem(
            id=row[0],
            name=row[1],
            policy=row[2],
            monthly_fee=Decimal(row[3]),
            currency=row[4],
            prior_invoice=None if row[5] is None else Decimal(row[5]),
            good_standing=bool(row[6]),
            checks=tuple(checks.get((row[0], "availability"), ())),
            loss_checks=tuple(checks.get((row[0], "loss"), ())),
        )
        for row in conn.execute(_ITEMS, (item_id,))
    ]


def load_evidence(
    conn: sqlite3.Connection,
    item: ServiceItem,
    start_ns: int,
    end_ns: int,
    place: ItemPlace | None = None,
) -> Evidence:
    """The item's evidence for ``[start_ns, end_ns)``, from ``LOOKBACK_NS`` earlier.

    * samples: rounds of the item's checks starting in ``[start_ns - LOOKBACK_NS,
      end_ns)``, by (start, agent, check); one per check and start (an imported
      round wins over an agent's at the same start: it was given on purpose);
    * maintenance windows in force (not cancelled) whose scope covers the item, and
      overrides of the item, that overlap that same span. Which node, segment and site
      windows cover it says ``place`` (where the item runs), by default the place the
      collector's inventory last stored; with none, only windows of the item itself or
      of every item apply;
    * every ticket of the item, by opening time: a ticket about an outage may be
      opened days later, so which outage it concerns is the engine's call.
    """
    if place is not None and place.item_id != item.id:
        raise ValueError(f"the place of {place.item_id!r} given for item {item.id!r}")
    since_ns = start_ns - LOOKBACK_NS
    checks = dict.fromkeys((*item.checks, *item.loss_checks))
    samples = [s for check in checks for s in _samples(conn, check, since_ns, end_ns)]
    samples = _with_verdicts(samples, item_verdicts(conn, item.id, since_ns, end_ns))
    samples.sort(key=lambda s: (s.start_ns, s.check.agent_id, s.check.check_id))
    return Evidence(
        samples=tuple(samples),
        maintenance=_maintenance(
            conn, place or stored_place(conn, item.id) or ItemPlace(item.id), since_ns, end_ns
        ),
        tickets=_tickets(conn, item.id),
        overrides=_overrides(conn, item.id, since_ns, end_ns),
    )


def _samples(conn: sqlite3.Connection, check: CheckKey, since_ns: int, end_ns: int) -> list[Sample]:
    # Imported rows (epoch 0) first within a start, so that they are the ones kept.
    rows = conn.execute(
        "SELECT start_ns, outcome, cause, interval_ns, packets_sent, packets_received "
        "FROM observations "
        "WHERE agent_id=? AND check_id=? AND start_ns>=? AND start_ns<? "
        "ORDER BY start_ns, sequence_epoch != 0, id",
        (check.agent_id, check.check_id, since_ns, end_ns),
    ).fetchall()
    rows = [row for i, row in enumerate(rows) if i == 0 or rows[i - 1][0] != row[0]]
    inferred = _median_gap([row[0] for row in rows])
    return [
        Sample(
            check=check,
            start_ns=start,
            ok=outcome == "ok",
            interval_ns=interval if interval is not None else inferred,
            cause=None if cause is None else Cause(cause),
            packets_sent=sent,
            packets_received=received,
        )
        for start, outcome, cause, interval, sent, received in rows
    ]


def _with_verdicts(samples: list[Sample], verdicts: list[ItemVerdict]) -> list[Sample]:
    """Failed rounds without a cause of their own take the attribution verdict covering
    them: the measured cause (inside a window, the observed one; whether the window
    counts is the policy's call, which the engine makes with the windows it is given)."""
    if not verdicts:
        return samples
    starts = [v.start_ns for v in verdicts]
    result = []
    for sample in samples:
        index = bisect.bisect_right(starts, sample.start_ns) - 1
        covering = next(
            (v for v in reversed(verdicts[: index + 1]) if v.end_ns > sample.start_ns), None
        )
        if sample.ok or sample.cause is not None or covering is None:
            result.append(sample)
            continue
        cause = covering.observed_cause if covering.cause == Cause.MAINTENANCE else covering.cause
        result.append(dataclasses.replace(sample, cause=cause or Cause.UNKNOWN))
    return result


def _median_gap(starts: list[int]) -> int:
    """The check's interval as its rounds show it: the median gap between consecutive
    starts (an outage of the agent makes a few long gaps, not a different median)."""
    if len(starts) < 2:
        return DEFAULT_INTERVAL_NS
    # median_low: a gap that occurred, and an integer, where the mean of two would not be.
    return statistics.median_low(b - a for a, b in itertools.pairwise(starts))


def _maintenance(
    conn: sqlite3.Connection, place: ItemPlace, since_ns: int, end_ns: int
) -> tuple[MaintenanceWindow, ...]:
    # Few windows overlap a month: the scope test is the model's, not repeated in SQL.
    windows = list_windows(conn, since_ns=since_ns, until_ns=end_ns)
    return tuple(window for window in windows if place.covered_by(window))


def _tickets(conn: sqlite3.Connection, item_id: str) -> tuple[Ticket, ...]:
    rows = conn.execute(
        "SELECT item_id, opened_ns, reference, credit_requested FROM tickets "
        "WHERE item_id=? ORDER BY opened_ns",
        (item_id,),
    )
    return tuple(
        Ticket(owner, opened, ref, bool(requested)) for owner, opened, ref, requested in rows
    )


def _overrides(
    conn: sqlite3.Connection, item_id: str, since_ns: int, end_ns: int
) -> tuple[Override, ...]:
    rows = conn.execute(
        "SELECT item_id, start_ns, end_ns, cause, reason FROM overrides "
        "WHERE item_id=? AND start_ns<? AND end_ns>? ORDER BY start_ns, end_ns",
        (item_id, end_ns, since_ns),
    )
    return tuple(
        Override(owner, start, end, Cause(cause), reason)
        for owner, start, end, cause, reason in rows
    )
