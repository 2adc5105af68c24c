"""Monthly reports and claim texts from the store (``slawatch-collector report / claim``).

A report is one ``ItemMonth`` per service item, as JSON (the schema is in
docs/report-format.md), CSV (one row per month and one per outage) or
Markdown. A claim is the text of a credit request with what the agreements ask
for: the service, the outage times, the total affected duration, the evidence
and the claim deadline.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from collector.errors import ConfigError
from collector.sla.engine import MARGIN_NS, evaluate, month_bounds
from collector.sla.evidence import load_evidence, load_item, load_items
from collector.sla.model import MINUTE, ItemMonth, Outage, ServiceItem
from collector.sla.policy import Policy, load_policies
from collector.store.sqlite import connect

_MONTH = re.compile(r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$")
SCHEMA = "slawatch.report/v1"


def check_month(month: str) -> str:
    if not _MONTH.match(month):
        raise ConfigError(f"--month {month!r}: use YYYY-MM, e.g. 2026-03")
    return month


def evaluate_from_store(
    db_path: Path, month: str, item_id: str | None = None, policy_dirs: tuple[Path, ...] = ()
) -> list[ItemMonth]:
    """Every service item's month (or one item's), from the store."""
    check_month(month)
    policies = load_policies(policy_dirs)
    conn = connect(db_path, readonly=True)
    try:
        items = [load_item(conn, item_id)] if item_id else load_items(conn)
        return [_evaluate(conn, item, policies, month) for item in items]
    except sqlite3.OperationalError as exc:
        raise ConfigError(f"{db_path}: not a slawatch store with service items ({exc})") from None
    finally:
        conn.close()


def evaluate_current_months(
    db_path: Path, now_ns: int, policy_dirs: tuple[Path, ...] = ()
) -> list[ItemMonth]:
    """Every service item's month so far: the month of ``now_ns`` in its policy's zone."""
    policies = load_policies(policy_dirs)
    conn = connect(db_path, readonly=True)
    try:
        months = []
        for item in load_items(conn):
            policy = policies.get(item.policy)
            zone = policy.zone if policy is not None else ZoneInfo("UTC")
            month = dt.datetime.fromtimestamp(now_ns // 10**9, tz=zone).strftime("%Y-%m")
            months.append(_evaluate(conn, item, policies, month))
        return months
    except sqlite3.OperationalError as exc:
        raise ConfigError(f"{db_path}: not a slawatch store with service items ({exc})") from None
    finally:
        conn.close()


def _evaluate(
    conn: sqlite3.Connection, item: ServiceItem, policies: dict[str, Policy], month: str
) -> ItemMonth:
    policy = policies.get(item.policy)
    if policy is None:
        raise ConfigError(
            f"service item {item.id!r} names policy {item.policy!r}, which is neither built in "
            f"({', '.join(sorted(policies))}) nor in --policies"
        )
    start, end = month_bounds(month, policy)
    # Beyond the month's end too: an incident crossing it is judged whole.
    evidence = load_evidence(conn, item, start, end + MARGIN_NS)
    return evaluate(item, policy, month, evidence)


# -- formats -----------------------------------------------------------------


def render(months: Sequence[ItemMonth], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"schema": SCHEMA, "items": [as_dict(m) for m in months]}, indent=2)
    if fmt == "csv":
        return _csv(months)
    return "\n\n".join(_markdown(m) for m in months) or "(no service items)"


def _time(ns: int | None, zone: str = "UTC") -> str | None:
    if ns is None:
        return None
    moment = dt.datetime.fromtimestamp(ns // 10**9, tz=ZoneInfo(zone))
    return moment.isoformat()


def _seconds(ns: int) -> float:
    return round(ns / 1e9, 3)


def as_dict(m: ItemMonth) -> dict[str, object]:
    """The report of one item-month as plain data (docs/report-format.md)."""
    return {
        "service_item": m.item.id,
        "name": m.item.name,
        "policy": m.policy,
        "month": m.month,
        "timezone": m.timezone,
        "period": {"start": _time(m.period_start_ns, m.timezone),
                   "end": _time(m.period_end_ns, m.timezone)},
        "scheduled_seconds": _seconds(m.scheduled_ns),
        "excluded_seconds": _seconds(m.excluded_ns),
        "counted_downtime_seconds": _seconds(m.counted_down_ns),
        "unknown_seconds": _seconds(m.unknown_ns),
        "availability": m.availability,
        "target": m.target,
        "met": m.met,
        "downtime_by_cause": {
            cause.value: {"counted_seconds": _seconds(t.counted_ns),
                          "excluded_seconds": _seconds(t.excluded_ns),
                          "excluded_by": list(t.rules)}
            for cause, t in sorted(m.by_cause.items())
        },
        "outages": [_outage(o, m.timezone) for o in m.outages],
        "credit": {"amount": str(m.credit.amount), "currency": m.credit.currency,
                   "formula": m.credit.formula, "figures": m.credit.figures,
                   "note": m.credit.note},
        "claim_deadline": _time(m.claim_deadline_ns),
        "findings": list(m.findings),
        "degraded_seconds": _seconds(m.degraded_ns),
        "degraded": [{"start": _time(s, m.timezone), "end": _time(e, m.timezone)}
                     for s, e in m.degraded],
    }  # fmt: skip


def _outage(o: Outage, zone: str) -> dict[str, object]:
    return {
        "start": _time(o.start_ns, zone),
        "end": _time(o.end_ns, zone),
        "duration_seconds": _seconds(o.duration_ns),
        "cause": o.cause.value,
        "cause_source": o.cause_source,
        "counted": o.counted,
        "rule": o.rule,
        "credited_seconds": _seconds(o.credited_ns),
        "credit_rule": o.credit_rule,
        "claim_by": _time(o.claim_by_ns),
    }


_CSV_COLUMNS = (
    "record", "service_item", "policy", "month", "start", "end", "cause", "counted", "rule",
    "duration_seconds", "credited_seconds", "availability", "target", "met",
    "scheduled_seconds", "counted_downtime_seconds", "excluded_seconds", "unknown_seconds",
    "credit", "currency", "formula",
)  # fmt: skip


def _csv(months: Sequence[ItemMonth]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, _CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for m in months:
        data = as_dict(m)
        credit = data["credit"]
        assert isinstance(credit, dict)
        base = {"service_item": m.item.id, "policy": m.policy, "month": m.month}
        writer.writerow({**base, "record": "month", "start": _time(m.period_start_ns, m.timezone),
                         "end": _time(m.period_end_ns, m.timezone),
                         "availability": m.availability, "target": m.target, "met": m.met,
                         **{k: data[k] for k in ("scheduled_seconds", "counted_downtime_seconds",
                                                 "excluded_seconds", "unknown_seconds")},
                         "credit": credit["amount"], "currency": credit["currency"],
                         "formula": credit["formula"]})  # fmt: skip
        for o in _outages(m):
            writer.writerow({**base, "record": "outage", **{k: o[k] for k in (
                "start", "end", "cause", "counted", "rule", "duration_seconds",
                "credited_seconds")}})  # fmt: skip
    return out.getvalue()


def _outages(m: ItemMonth) -> list[dict[str, object]]:
    return [_outage(o, m.timezone) for o in m.outages]


def _minutes(ns: int) -> str:
    return f"{ns / MINUTE:.1f} min"


def _markdown(m: ItemMonth) -> str:
    met = "met" if m.met else "**missed**"
    lines = [
        f"## {m.item.name or m.item.id} ({m.item.id}), {m.month}",
        "",
        f"Policy `{m.policy}`, period {_time(m.period_start_ns, m.timezone)} to "
        f"{_time(m.period_end_ns, m.timezone)} ({m.timezone}).",
        "",
        f"- Availability **{m.availability:.4%}** against {m.target:.2%}: {met}",
        f"- Scheduled {_minutes(m.scheduled_ns)}, counted downtime {_minutes(m.counted_down_ns)},"
        f" excluded downtime {_minutes(m.excluded_ns)}, unknown (no data)"
        f" {_minutes(m.unknown_ns)}",
        f"- Credit **{m.credit.amount} {m.credit.currency}**: {m.credit.formula}"
        + (f" ({m.credit.note})" if m.credit.note else ""),
    ]
    if m.claim_deadline_ns is not None:
        lines.append(f"- Claim by {_time(m.claim_deadline_ns)}")
    lines += [f"- Finding: {finding}" for finding in m.findings]
    if m.degraded_ns:
        lines.append(f"- Degraded (excess packet loss): {_minutes(m.degraded_ns)}"
                     f" in {len(m.degraded)} spans")  # fmt: skip
    if m.outages:
        lines += [
            "",
            "| start | end | cause | counted | why | credited |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {_time(o.start_ns, m.timezone)} | {_time(o.end_ns, m.timezone)} | {o.cause} | "
            f"{'yes' if o.counted else 'no'} | {o.rule} | {_minutes(o.credited_ns)} |"
            for o in m.outages
        ]
    return "\n".join(lines)


def claim_text(m: ItemMonth) -> str:
    """A credit request a customer can send, with what the agreements ask for: exactly
    the spans the credit was computed from, and their total."""
    total = sum(ns for _start, _end, ns in m.credit.basis)
    lines = [
        f"Subject: Service credit request: {m.item.name or m.item.id}, {m.month}",
        "",
        f"Service: {m.item.name or m.item.id} (service item {m.item.id}), "
        f"agreement policy {m.policy}.",
        f"Period: {m.month} ({m.timezone}). Measured availability {m.availability:.4%} "
        f"against a commitment of {m.target:.2%}.",
        "",
        "Outages:",
    ]
    lines += [
        f"- {_time(start)} to {_time(end)} (UTC): {_minutes(ns)} credited"
        + "".join(f", cause {o.cause}" for o in m.outages if o.start_ns < end and start < o.end_ns)
        for start, end, ns in m.credit.basis
    ] or ["- none eligible for a credit this month"]
    lines += [
        "",
        f"Total affected duration: {_minutes(total)}.",
        f"Credit requested: {m.credit.amount} {m.credit.currency} ({m.credit.formula}; "
        + ", ".join(f"{k} {v}" for k, v in m.credit.figures.items() if k != "exact")
        + ")."
        + (f" {m.credit.note}." if m.credit.note else ""),
        "",
        "Evidence: independent measurements by slawatch agents, one result per check "
        "interval, each stored with its time, outcome and error class; the full report "
        "(`slawatch-collector report --format json`) is attached.",
    ]
    if m.claim_deadline_ns is not None:
        lines.append(
            f"Claim deadline: {_time(m.claim_deadline_ns)} (the earliest of the incidents' "
            "deadlines: the agreement's claim window after each incident ended)."
        )
    return "\n".join(lines) + "\n"
