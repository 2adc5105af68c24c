"""Attribution's incidents in the store: every version of every verdict, the last one wins.

A run of attribution over ``[start, end)`` yields incidents without ids. ``save_run``
matches them to the incidents already stored and decides, per incident, what changed:

* a computed incident is the *same* incident as a stored current one (its latest
  version, not withdrawn) when both have the same kind, overlap or touch in time,
  and share a service item or the root; it keeps the stored id;
* a **new version** is written only when the verdict changed: kind, cause,
  observed cause, root, start, the items or affected items, the confidence, or
  the end (closed, reopened, or a closed end that moved);
* an open incident that only grew (its end is the newest data, and nothing else
  changed) is **updated in place**: a month-long outage is one version, not one
  per run;
* a stored current incident lying inside the range that matches nothing gets a
  **withdrawn** version: late data showed there was no such outage;
* a stored *open* incident that began before the range and matches nothing is
  **closed** at the range's start (a new version): the run saw no outage after it.

Nothing outside ``[start, end)`` is changed. An incident that began before the
range (the run cannot see its beginning) keeps its stored start, and its
evidence lines are merged with the run's (see ``_carry_over``).

Rows: ``incidents`` holds every version (``current = 1`` on the latest one; ``end_ns``
is NULL while open, ``until_ns`` is always the end of the data the verdict covers);
``incident_items`` holds, for the current version of each incident only, one row
per service item (role ``root`` for the items whose own fault the root is,
``affected`` for the others), so "the verdicts of item X in [a, b)" is one
indexed query. All of one run is written in the caller's transaction
(``Store.save_attribution``): a failure keeps nothing of it.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from collector.attribution.model import (
    AffectedItem,
    AttributionResult,
    Confidence,
    EvidenceLine,
    Incident,
    IncidentKind,
    Root,
    RootScope,
)
from collector.sla.model import Cause

__all__ = [
    "SCHEMA_STEP_6",
    "Change",
    "IncidentVersion",
    "ItemVerdict",
    "OverrideNote",
    "SaveSummary",
    "StoredIncident",
    "current_incidents",
    "incident_override",
    "item_verdicts",
    "month_seconds",
    "oldest_open_until",
    "open_incident_counts",
    "save_run",
]

# Store version 6: additive only, see MIGRATIONS in sqlite.py.
SCHEMA_STEP_6 = """
CREATE TABLE incidents (
    id             TEXT NOT NULL,
    version        INTEGER NOT NULL,     -- 1, 2 ...: each a changed verdict
    computed_ns    INTEGER NOT NULL,     -- when this version was first computed
    updated_ns     INTEGER NOT NULL,     -- when a run last confirmed or grew it
    current        INTEGER NOT NULL,     -- 1 on the latest version of the id
    kind           TEXT NOT NULL,        -- outage, degraded (IncidentKind)
    cause          TEXT NOT NULL,        -- a Cause value
    observed_cause TEXT,                 -- inside maintenance: what the measurements give
    root_scope     TEXT NOT NULL,        -- item, node, segment, path (RootScope)
    root_id        TEXT NOT NULL,
    start_ns       INTEGER NOT NULL,
    end_ns         INTEGER,              -- NULL while open
    until_ns       INTEGER NOT NULL,     -- end of the data the verdict covers
    confidence     TEXT NOT NULL,        -- high, medium, low
    withdrawn      INTEGER NOT NULL,     -- 1: late data showed no such incident
    body_json      TEXT NOT NULL,        -- items, affected, evidence, missing
    PRIMARY KEY (id, version)
) WITHOUT ROWID;
CREATE INDEX incidents_current ON incidents (until_ns, start_ns) WHERE current = 1;
CREATE TABLE incident_items (
    incident_id TEXT NOT NULL,
    version     INTEGER NOT NULL,        -- always the incident's current version
    item_id     TEXT NOT NULL,
    role        TEXT NOT NULL,           -- root, affected
    start_ns    INTEGER NOT NULL,
    end_ns      INTEGER NOT NULL,        -- the incident's until_ns
    PRIMARY KEY (incident_id, item_id)
) WITHOUT ROWID;
CREATE INDEX incident_items_by_item ON incident_items (item_id, start_ns)
"""


class Change(Enum):
    NEW = "new"
    REVISED = "revised"
    EXTENDED = "extended"
    WITHDRAWN = "withdrawn"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class SaveSummary:
    """What one run changed in the store."""

    new: int = 0
    revised: int = 0
    # Open incidents that grew, updated in place (no new version).
    extended: int = 0
    withdrawn: int = 0
    unchanged: int = 0

    def counts(self) -> dict[str, int]:
        return {c.value: getattr(self, c.value) for c in Change}


@dataclass(frozen=True, slots=True)
class IncidentVersion:
    """One version of an incident, as ``--history`` shows it."""

    version: int
    computed_ns: int
    cause: Cause
    root: Root
    start_ns: int
    end_ns: int | None  # None while open
    withdrawn: bool


@dataclass(frozen=True, slots=True)
class StoredIncident:
    """An incident's current version; ``incident.end_ns`` is the end of the data it
    covers (the newest data while ``incident.open``)."""

    id: str
    version: int
    computed_ns: int
    updated_ns: int
    withdrawn: bool
    incident: Incident
    history: tuple[IncidentVersion, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class ItemVerdict:
    """A span of one service item with its cause (for the SLA engine)."""

    start_ns: int
    end_ns: int  # for an open incident: the newest data it covers
    cause: Cause
    observed_cause: Cause | None


@dataclass(frozen=True, slots=True)
class OverrideNote:
    """An operator's override that touches an incident (table ``overrides``)."""

    item_id: str
    cause: Cause
    reason: str
    start_ns: int
    end_ns: int


# -- saving -------------------------------------------------------------------


def save_run(conn: sqlite3.Connection, result: AttributionResult, now_ns: int) -> SaveSummary:
    """Store ``result``'s incidents as versions of the stored ones (inside the caller's
    transaction); what changed, by kind of change."""
    stored = _candidates(conn, result.start_ns, result.end_ns)
    index = _Index(stored)
    taken: set[str] = set()
    tally = dict.fromkeys(Change, 0)
    # Longer incidents choose first, so two computed ones that could continue the same
    # stored incident resolve the same way in every run (no flip-flopping versions).
    ordered = sorted(
        result.incidents,
        key=lambda i: (i.start_ns, i.kind.value, i.root.id, i.start_ns - i.end_ns, i.cause.value),
    )
    for computed in ordered:
        match = _best_match(computed, index, taken)
        if match is None:
            _insert(conn, _new_id(conn, computed), 1, computed, now_ns, withdrawn=False)
            tally[Change.NEW] += 1
            continue
        taken.add(match.id)
        merged = _carry_over(match.incident, computed, result.start_ns)
        change = _change(match.incident, merged)
        if change is Change.REVISED:
            _write_version(conn, match, merged, now_ns, withdrawn=False)
        elif change is Change.EXTENDED:
            _update_in_place(conn, match, merged, now_ns)
        tally[change] += 1
    for old in stored:
        if old.id in taken:
            continue
        if result.start_ns <= old.incident.start_ns < result.end_ns:
            # It began inside the range: the run saw all of it, and found nothing.
            _write_version(conn, old, old.incident, now_ns, withdrawn=True)
            tally[Change.WITHDRAWN] += 1
        elif old.incident.open and old.incident.start_ns < result.start_ns:
            # Open across the range's start, and not in the range: it ended there (left
            # open, it would stay open for ever). What lies before the range stands.
            end = min(old.incident.end_ns, result.start_ns)
            closed = replace(old.incident, end_ns=end, open=False)
            _write_version(conn, old, closed, now_ns, withdrawn=False)
            tally[Change.REVISED] += 1
    return SaveSummary(**{c.value: n for c, n in tally.items()})


def _candidates(conn: sqlite3.Connection, start_ns: int, end_ns: int) -> list[StoredIncident]:
    """Current, not withdrawn incidents that overlap or touch ``[start_ns, end_ns)``."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM incidents WHERE current = 1 AND withdrawn = 0 "
        "AND until_ns >= ? AND start_ns <= ? ORDER BY start_ns, id",
        (start_ns, end_ns),
    ).fetchall()
    return [_stored(row) for row in rows]


class _Index:
    """Stored candidates by what a match must share: a service item or the root."""

    def __init__(self, stored: Sequence[StoredIncident]) -> None:
        self.by_key: dict[tuple[str, str], list[StoredIncident]] = {}
        for candidate in stored:
            for key in _match_keys(candidate.incident):
                self.by_key.setdefault(key, []).append(candidate)

    def sharing(self, incident: Incident) -> dict[str, StoredIncident]:
        found: dict[str, StoredIncident] = {}
        for key in _match_keys(incident):
            for candidate in self.by_key.get(key, ()):
                found[candidate.id] = candidate
        return found


def _match_keys(incident: Incident) -> list[tuple[str, str]]:
    root = incident.root
    return [("root", f"{root.scope}:{root.id}"), *(("item", i) for i in incident.all_items)]


def _best_match(computed: Incident, index: _Index, taken: set[str]) -> StoredIncident | None:
    """The stored incident ``computed`` continues: same kind, overlapping or touching,
    sharing an item or the root; the same root first, then the same cause, then the
    longest overlap."""
    best: StoredIncident | None = None
    best_key: tuple[bool, bool, int, int, str] | None = None
    for candidate in index.sharing(computed).values():
        old = candidate.incident
        if candidate.id in taken or old.kind != computed.kind:
            continue
        if computed.start_ns > old.end_ns or old.start_ns > computed.end_ns:
            continue
        overlap = min(old.end_ns, computed.end_ns) - max(old.start_ns, computed.start_ns)
        # The id last: ties are broken the same way in every run.
        key = (old.root == computed.root, old.cause == computed.cause, overlap,
               -abs(old.start_ns - computed.start_ns), candidate.id)  # fmt: skip
        if best_key is None or key > best_key:
            best, best_key = candidate, key
    return best


def _carry_over(old: Incident, computed: Incident, range_start_ns: int) -> Incident:
    """``computed`` with what the run could not see: an incident that began before the
    range keeps its stored start, and evidence lines the run no longer has.

    A line the run has too takes the run's text and counts, with the earlier first
    time; its observation count then covers at least the run's range, not
    necessarily the whole incident.
    """
    if old.start_ns >= range_start_ns:
        return computed
    fresh = {_line_key(line): line for line in computed.evidence}
    lines: list[EvidenceLine] = []
    for line in old.evidence:
        now = fresh.pop(_line_key(line), None)
        if now is None:
            lines.append(line)
        else:
            first = min(line.first_ns, now.first_ns) if line.first_ns else now.first_ns
            lines.append(replace(now, first_ns=first))
    lines.extend(fresh.values())
    return replace(computed, start_ns=min(old.start_ns, computed.start_ns), evidence=tuple(lines))


def _line_key(line: EvidenceLine) -> tuple[str, str, str, str]:
    return (line.signal, line.agent_id, line.check_id, line.vantage)


def _verdict(incident: Incident) -> tuple[object, ...]:
    """What a new version is made for when it changes (the end is handled apart)."""
    return (
        incident.kind,
        incident.cause,
        incident.observed_cause,
        incident.root,
        incident.start_ns,
        frozenset(incident.items),
        frozenset(incident.affected),
        incident.confidence,
    )


def _change(old: Incident, new: Incident) -> Change:
    if _verdict(old) != _verdict(new) or old.open != new.open:
        return Change.REVISED
    if not new.open:
        # A closed incident whose end moved is a revised interval.
        return Change.REVISED if old.end_ns != new.end_ns else Change.UNCHANGED
    if old.end_ns != new.end_ns or _body(old) != _body(new):
        return Change.EXTENDED
    return Change.UNCHANGED


def _new_id(conn: sqlite3.Connection, incident: Incident) -> str:
    """``inc-<root>-<start, UTC>``; a numbered suffix when that id was ever used."""
    start = dt.datetime.fromtimestamp(incident.start_ns // 10**9, dt.UTC)
    base = f"inc-{incident.root.id}-{start:%Y%m%dT%H%M%S}"
    candidate, n = base, 1
    while conn.execute("SELECT 1 FROM incidents WHERE id = ? LIMIT 1", (candidate,)).fetchone():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _write_version(
    conn: sqlite3.Connection,
    old: StoredIncident,
    incident: Incident,
    now_ns: int,
    *,
    withdrawn: bool,
) -> None:
    conn.execute("UPDATE incidents SET current = 0 WHERE id = ? AND current = 1", (old.id,))
    _insert(conn, old.id, old.version + 1, incident, now_ns, withdrawn=withdrawn)


def _insert(
    conn: sqlite3.Connection,
    incident_id: str,
    version: int,
    incident: Incident,
    now_ns: int,
    *,
    withdrawn: bool,
) -> None:
    i = incident
    conn.execute(
        f"INSERT INTO incidents ({_COLUMNS}) VALUES "
        "(?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (incident_id, version, now_ns, now_ns, i.kind.value, i.cause.value,
         None if i.observed_cause is None else i.observed_cause.value, i.root.scope.value,
         i.root.id, i.start_ns, None if i.open else i.end_ns, i.end_ns, i.confidence.value,
         int(withdrawn), _body(i)),
    )  # fmt: skip
    _index(conn, incident_id, version, i)


def _update_in_place(
    conn: sqlite3.Connection, old: StoredIncident, incident: Incident, now_ns: int
) -> None:
    conn.execute(
        "UPDATE incidents SET updated_ns = ?, end_ns = ?, until_ns = ?, body_json = ? "
        "WHERE id = ? AND version = ?",
        (now_ns, None if incident.open else incident.end_ns, incident.end_ns, _body(incident),
         old.id, old.version),
    )  # fmt: skip
    _index(conn, old.id, old.version, incident)


def _index(conn: sqlite3.Connection, incident_id: str, version: int, incident: Incident) -> None:
    """The item rows of the incident's current version (replacing older ones)."""
    conn.execute("DELETE FROM incident_items WHERE incident_id = ?", (incident_id,))
    roles = {a.item_id: "affected" for a in incident.affected}
    roles.update(dict.fromkeys(incident.items, "root"))
    conn.executemany(
        "INSERT INTO incident_items VALUES (?, ?, ?, ?, ?, ?)",
        [(incident_id, version, item, role, incident.start_ns, incident.end_ns)
         for item, role in sorted(roles.items())],
    )  # fmt: skip


# -- rows <-> domain ------------------------------------------------------------

_COLUMNS = (
    "id, version, computed_ns, updated_ns, current, kind, cause, observed_cause, root_scope, "
    "root_id, start_ns, end_ns, until_ns, confidence, withdrawn, body_json"
)


def _body(incident: Incident) -> str:
    return json.dumps(
        {
            "items": list(incident.items),
            "affected": [
                {"item": a.item_id, "node": a.node, "via": a.via} for a in incident.affected
            ],
            "evidence": [
                {
                    "signal": e.signal,
                    "text": e.text,
                    "agent": e.agent_id,
                    "check": e.check_id,
                    "vantage": e.vantage,
                    "observations": e.observations,
                    "first_ns": e.first_ns,
                    "last_ns": e.last_ns,
                }
                for e in incident.evidence
            ],
            "missing": list(incident.missing),
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def _stored(row: Sequence[Any]) -> StoredIncident:
    (incident_id, version, computed_ns, updated_ns, _current, kind, cause, observed, scope,
     root_id, start_ns, end_ns, until_ns, confidence, withdrawn, body_json) = row  # fmt: skip
    body = json.loads(str(body_json))
    incident = Incident(
        kind=IncidentKind(kind),
        root=Root(RootScope(scope), str(root_id)),
        cause=Cause(cause),
        start_ns=int(start_ns),
        end_ns=int(until_ns),
        items=tuple(body["items"]),
        affected=tuple(AffectedItem(a["item"], a["node"], a["via"]) for a in body["affected"]),
        confidence=Confidence(confidence),
        evidence=tuple(
            EvidenceLine(
                e["signal"],
                e["text"],
                e["agent"],
                e["check"],
                e["vantage"],
                e["observations"],
                e["first_ns"],
                e["last_ns"],
            )
            for e in body["evidence"]
        ),
        missing=tuple(body["missing"]),
        observed_cause=None if observed is None else Cause(observed),
        open=end_ns is None,
    )
    return StoredIncident(
        id=str(incident_id),
        version=int(version),
        computed_ns=int(computed_ns),
        updated_ns=int(updated_ns),
        withdrawn=bool(withdrawn),
        incident=incident,
    )


# -- reading --------------------------------------------------------------------


def current_incidents(
    conn: sqlite3.Connection,
    start_ns: int,
    end_ns: int,
    item_id: str | None = None,
    *,
    withdrawn: bool = False,
    history: bool = True,
) -> list[StoredIncident]:
    """Current versions of the incidents overlapping ``[start_ns, end_ns)``, by start;
    only those of ``item_id`` (as root item or affected) when given; withdrawn ones too
    when ``withdrawn``; each with all its versions when ``history``.

    A store older than version 6 has no incidents: an empty list.
    """
    query = (
        f"SELECT {_COLUMNS} FROM incidents WHERE current = 1 AND until_ns > ?1 "
        "AND start_ns < ?2 AND (?3 OR withdrawn = 0) "
        "AND (?4 IS NULL OR id IN (SELECT incident_id FROM incident_items "
        "    WHERE item_id = ?4 AND start_ns < ?2 AND end_ns > ?1)) "
        "ORDER BY start_ns, id"
    )
    try:
        rows = conn.execute(query, (start_ns, end_ns, int(withdrawn), item_id)).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    found = [_stored(row) for row in rows]
    if not history:
        return found
    versions = _histories(conn, [s.id for s in found])
    return [replace(s, history=tuple(versions.get(s.id, ()))) for s in found]


def current_incident(conn: sqlite3.Connection, incident_id: str) -> StoredIncident | None:
    """The current version of incident ``incident_id`` (None: no such incident)."""
    try:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM incidents WHERE current = 1 AND id = ?", (incident_id,)
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return None if row is None else _stored(row)


def _histories(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, list[IncidentVersion]]:
    wanted = list(ids)
    out: dict[str, list[IncidentVersion]] = {}
    # In chunks: SQLite bounds the parameters of one statement.
    for at in range(0, len(wanted), 500):
        chunk = wanted[at : at + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            "SELECT id, version, computed_ns, cause, root_scope, root_id, start_ns, end_ns, "
            f"withdrawn FROM incidents WHERE id IN ({marks}) ORDER BY id, version",
            chunk,
        ):
            out.setdefault(row[0], []).append(
                IncidentVersion(
                    version=row[1],
                    computed_ns=row[2],
                    cause=Cause(row[3]),
                    root=Root(RootScope(row[4]), row[5]),
                    start_ns=row[6],
                    end_ns=row[7],
                    withdrawn=bool(row[8]),
                )
            )
    return out


def item_verdicts(
    conn: sqlite3.Connection,
    item_id: str,
    start_ns: int,
    end_ns: int,
    kind: IncidentKind = IncidentKind.OUTAGE,
) -> list[ItemVerdict]:
    """The current, not withdrawn verdicts on ``item_id`` (its own fault or affected)
    overlapping ``[start_ns, end_ns)``, by start; whole, not clipped to the span (an
    incident is judged whole across a month's edge). Empty for a store older than
    version 6."""
    try:
        rows = conn.execute(
            "SELECT i.start_ns, i.until_ns, i.cause, i.observed_cause "
            "FROM incident_items x JOIN incidents i "
            "  ON i.id = x.incident_id AND i.version = x.version "
            "WHERE x.item_id = ? AND x.start_ns < ? AND x.end_ns > ? "
            "  AND i.withdrawn = 0 AND i.kind = ? ORDER BY i.start_ns, i.id",
            (item_id, end_ns, start_ns, kind.value),
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    return [
        ItemVerdict(start, end, Cause(cause), None if observed is None else Cause(observed))
        for start, end, cause, observed in rows
    ]


def incident_override(conn: sqlite3.Connection, stored: StoredIncident) -> OverrideNote | None:
    """The newest operator override overlapping the incident for one of its items."""
    items = stored.incident.all_items
    if not items:
        return None
    marks = ",".join("?" * len(items))
    row = conn.execute(
        "SELECT item_id, cause, reason, start_ns, end_ns FROM overrides "
        f"WHERE item_id IN ({marks}) AND start_ns < ? AND end_ns > ? "
        "ORDER BY created_ns DESC, item_id LIMIT 1",
        (*items, stored.incident.end_ns, stored.incident.start_ns),
    ).fetchone()
    if row is None:
        return None
    return OverrideNote(row[0], Cause(row[1]), row[2], row[3], row[4])


def oldest_open_until(conn: sqlite3.Connection) -> int | None:
    """The oldest data an open current incident was last seen at (None: no open one).

    An attribution run must reach back to it, or an incident left open when the
    collector stopped would stay open for ever."""
    row = conn.execute(
        "SELECT min(until_ns) FROM incidents WHERE current = 1 AND withdrawn = 0 AND end_ns IS NULL"
    ).fetchone()
    return None if row[0] is None else int(row[0])


def month_seconds(
    conn: sqlite3.Connection, start_ns: int, end_ns: int
) -> dict[tuple[str, IncidentKind, Cause], float]:
    """Seconds of ``[start_ns, end_ns)`` each service item spent in current incidents,
    by kind and cause; overlapping incidents of one item and cause count once."""
    spans: dict[tuple[str, IncidentKind, Cause], list[tuple[int, int]]] = {}
    for item, kind, cause, start, end in conn.execute(
        "SELECT x.item_id, i.kind, i.cause, max(i.start_ns, ?1), min(i.until_ns, ?2) "
        "FROM incident_items x JOIN incidents i "
        "  ON i.id = x.incident_id AND i.version = x.version "
        "WHERE x.end_ns > ?1 AND x.start_ns < ?2 AND i.withdrawn = 0",
        (start_ns, end_ns),
    ):
        if end > start:
            spans.setdefault((item, IncidentKind(kind), Cause(cause)), []).append((start, end))
    return {key: _union_ns(found) / 1e9 for key, found in spans.items()}


def _union_ns(spans: list[tuple[int, int]]) -> int:
    total, reach = 0, None
    for start, end in sorted(spans):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def open_incident_counts(conn: sqlite3.Connection) -> dict[tuple[Cause, IncidentKind], int]:
    """Open current incidents, by cause and kind."""
    return {
        (Cause(cause), IncidentKind(kind)): n
        for cause, kind, n in conn.execute(
            "SELECT cause, kind, count(*) FROM incidents WHERE current = 1 AND withdrawn = 0 "
            "AND end_ns IS NULL GROUP BY cause, kind"
        )
    }
