"""``slawatch-collector incidents``: the stored incidents as JSON or a terminal table.

Reads the store only (a read-only connection). The JSON shape is documented in
docs/attribution.md and parsed by the lab tests: keep its names.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from collector.attribution.model import EvidenceLine, Incident, IncidentKind
from collector.sla.model import DAY, HOUR, MINUTE, SECOND
from collector.store.incidents import (
    IncidentVersion,
    OverrideNote,
    StoredIncident,
    current_incidents,
    incident_override,
)
from collector.store.sqlite import connect

__all__ = [
    "Listed",
    "load",
    "parse_duration_ns",
    "parse_when",
    "to_json",
    "to_table",
]

_UNITS = {"s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY, "w": 7 * DAY}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


@dataclass(frozen=True, slots=True)
class Listed:
    stored: StoredIncident
    override: OverrideNote | None


def parse_duration_ns(text: str) -> int:
    """``90m``, ``6h``, ``7d``, ``2w``, ``30s`` (also ``1.5h``) as nanoseconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30m, 6h, 7d or 2w")
    ns = int(float(match.group(1)) * _UNITS[match.group(2)])
    if ns <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return ns


def parse_when(text: str, now_ns: int) -> int:
    """A moment: a time ago (``6h``: six hours before ``now_ns``) or ISO 8601
    (``2026-03-01``, ``2026-03-01T10:00``, ``2026-03-01T10:00:00+02:00``; UTC when
    no offset is given)."""
    if _DURATION.match(text):
        return now_ns - parse_duration_ns(text)
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a time ago (30m, 6h, 7d, 2w) nor an ISO 8601 time "
            "(2026-03-01, 2026-03-01T10:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp()) * SECOND + moment.microsecond * 1000


def load(
    db_path: Path, start_ns: int, end_ns: int, item_id: str | None, withdrawn: bool
) -> list[Listed]:
    """Current incidents overlapping ``[start_ns, end_ns)`` with their overrides."""
    conn = connect(db_path, readonly=True)
    try:
        found = current_incidents(conn, start_ns, end_ns, item_id, withdrawn=withdrawn)
        return [Listed(s, _override(conn, s)) for s in found]
    finally:
        conn.close()


def _override(conn: sqlite3.Connection, stored: StoredIncident) -> OverrideNote | None:
    try:
        return incident_override(conn, stored)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a store from before overrides
            return None
        raise


# -- JSON -----------------------------------------------------------------------


def iso(ns: int | None) -> str | None:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-03-01T10:00:00.250Z``."""
    if ns is None:
        return None
    moment = dt.datetime.fromtimestamp(ns // SECOND, dt.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ns % SECOND // 1_000_000:03d}Z"


def to_json(listed: list[Listed], now_ns: int) -> str:
    return json.dumps(
        {"generated": iso(now_ns), "incidents": [_as_dict(x) for x in listed]}, indent=2
    )


def _as_dict(listed: Listed) -> dict[str, object]:
    s, i = listed.stored, listed.stored.incident
    end_ns = None if i.open else i.end_ns
    return {
        "id": s.id,
        "version": s.version,
        "kind": i.kind.value,
        "cause": i.cause.value,
        "observed_cause": None if i.observed_cause is None else i.observed_cause.value,
        "root": {"scope": i.root.scope.value, "id": i.root.id},
        "start": iso(i.start_ns),
        "end": iso(end_ns),
        "start_ns": i.start_ns,
        "end_ns": end_ns,
        # The end of the data the verdict covers (the newest, while open).
        "until_ns": i.end_ns,
        "open": i.open,
        "withdrawn": s.withdrawn,
        "items": list(i.items),
        "affected": [{"item": a.item_id, "node": a.node, "via": a.via} for a in i.affected],
        "confidence": i.confidence.value,
        "evidence": [_evidence(e) for e in i.evidence],
        "missing": list(i.missing),
        "override": _override_dict(listed.override),
        "history": [_version(v) for v in s.history],
    }


def _evidence(e: EvidenceLine) -> dict[str, object]:
    return {"signal": e.signal, "text": e.text, "agent": e.agent_id, "check": e.check_id,
            "vantage": e.vantage, "observations": e.observations,
            "first": iso(e.first_ns) if e.first_ns else None,
            "last": iso(e.last_ns) if e.last_ns else None}  # fmt: skip


def _override_dict(o: OverrideNote | None) -> dict[str, object] | None:
    if o is None:
        return None
    return {"cause": o.cause.value, "reason": o.reason, "start": iso(o.start_ns),
            "end": iso(o.end_ns), "item": o.item_id}  # fmt: skip


def _version(v: IncidentVersion) -> dict[str, object]:
    return {"version": v.version, "computed_ns": v.computed_ns, "cause": v.cause.value,
            "root": {"scope": v.root.scope.value, "id": v.root.id}, "start_ns": v.start_ns,
            "end_ns": v.end_ns, "withdrawn": v.withdrawn}  # fmt: skip


# -- table ----------------------------------------------------------------------


def _short_time(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns // SECOND, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(ns: int) -> str:
    seconds = max(0, ns) // SECOND
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h{minutes:02d}m"
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s"


def to_table(listed: list[Listed], now_ns: int, history: bool) -> str:
    """One line per incident, then its evidence (and versions) indented; times UTC."""
    if not listed:
        return "(no incidents)\n"
    lines = [f"incidents as of {_short_time(now_ns)} UTC"]
    for x in listed:
        lines.append("")
        lines.extend(_incident_lines(x, history))
    return "\n".join(lines) + "\n"


def _incident_lines(listed: Listed, history: bool) -> list[str]:
    s, i = listed.stored, listed.stored.incident
    cause = (
        i.cause.value if i.observed_cause is None else f"{i.cause} (observed {i.observed_cause})"
    )
    if i.kind is not IncidentKind.OUTAGE:
        cause += f" {i.kind}"
    flags = "  WITHDRAWN" if s.withdrawn else ""
    head = (
        f"{s.id}  {cause}  {_span(i)}  root {i.root.scope} {i.root.id}  "
        f"{i.confidence}  v{s.version}{flags}"
    )
    lines = [head, f"    items: {_items_text(i)}"]
    if listed.override is not None:
        o = listed.override
        lines.append(f"    override ({o.item_id}): {o.cause} from {_short_time(o.start_ns)} "
                     f"to {_short_time(o.end_ns)}: {o.reason}")  # fmt: skip
    for e in i.evidence:
        lines.append(f"    - {e.signal}: {e.text}{_evidence_source(e)}")
    if i.missing:
        lines.append(f"    missing: {'; '.join(i.missing)}")
    if history:
        for v in s.history:
            v_end = "open" if v.end_ns is None else _short_time(v.end_ns)
            lines.append(
                f"    v{v.version} computed {_short_time(v.computed_ns)}: {v.cause}, root "
                f"{v.root.scope} {v.root.id}, {_short_time(v.start_ns)} -> {v_end}"
                f"{' (withdrawn)' if v.withdrawn else ''}"
            )
    return lines


def _span(i: Incident) -> str:
    """``start -> end (duration)``; the end's date only when it differs."""
    start = _short_time(i.start_ns)
    if i.open:
        end = "open"
    else:
        end = _short_time(i.end_ns)
        if end[:10] == start[:10]:
            end = end[11:]
    return f"{start} -> {end} ({_duration(i.end_ns - i.start_ns)}{'+' if i.open else ''})"


def _items_text(i: Incident) -> str:
    parts = list(i.items)
    parts += [f"{a.item_id} (affected via {a.via})" for a in i.affected]
    return ", ".join(parts) or "-"


def _evidence_source(e: EvidenceLine) -> str:
    where = [part for part in (e.agent_id, e.check_id, e.vantage) if part]
    if e.observations:
        where.append(f"{e.observations} obs")
    return f"  [{' '.join(where)}]" if where else ""
