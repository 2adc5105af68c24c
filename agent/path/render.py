"""The table (live on a terminal, plain otherwise) and the JSON report of a path run."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.path.hops import (
    RATE_LIMITED_NOTE,
    BorderEgress,
    HopStats,
    LossJudgement,
    PathChange,
    Verdict,
    aggregate_hops,
    final_ttl,
    find_border_egress,
    judge_loss,
)
from agent.path.names import ReverseNames
from agent.path.session import PathRun

_NOTES = {
    Verdict.RATE_LIMITED: RATE_LIMITED_NOTE,
    Verdict.SILENT: "no ICMP replies (silent router)",
}
_LIVE_CHANGES = 5  # path-change lines kept under the live table


@dataclass(frozen=True, slots=True)
class PathAnalysis:
    hops: list[HopStats]
    judgement: LossJudgement
    border: BorderEgress

    def markers(self, hop: HopStats) -> list[str]:
        """The hop's markers, as the table and the JSON name them."""
        marks = []
        if hop.ttl == self.border.border_ttl:
            marks.append("border")
        if hop.ttl == self.border.egress_ttl:
            marks.append("egress")
        verdict = self.judgement.verdicts[hop.ttl - 1]
        if verdict in (Verdict.RATE_LIMITED, Verdict.SILENT):
            marks.append(verdict.value)
        if hop.ttl == self.judgement.path_loss_start_ttl:
            marks.append("path_loss_start")
        return marks


def analyse(
    run: PathRun, borders: Sequence[str], prefixes: Sequence[ipaddress.IPv4Network]
) -> PathAnalysis:
    hops = aggregate_hops(run.rounds, final_ttl(run.rounds))
    judgement = judge_loss([(hop.sent, hop.received) for hop in hops])
    return PathAnalysis(hops, judgement, find_border_egress(hops, borders, prefixes))


def _iso(unix_ns: int) -> str:
    moment = datetime.datetime.fromtimestamp(unix_ns / 1e9, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds")


def _star(path: Sequence[str | None]) -> list[str]:
    return [address or "*" for address in path]


def change_dict(change: PathChange) -> dict[str, Any]:
    return {
        "round": change.round_index,
        "at": _iso(change.at_unix_ns),
        "old": _star(change.old),
        "new": _star(change.new),
    }


def change_line(change: PathChange) -> str:
    return (
        f"path change at round {change.round_index} ({_iso(change.at_unix_ns)}): "
        f"{' '.join(_star(change.old))}  ->  {' '.join(_star(change.new))}"
    )


def _hop_dict(hop: HopStats, analysis: PathAnalysis, names: ReverseNames) -> dict[str, Any]:
    low, high = hop.loss_interval
    verdict = analysis.judgement.verdicts[hop.ttl - 1]
    return {
        "ttl": hop.ttl,
        "address": hop.address,
        "name": names.get(hop.address),
        "addresses": dict(hop.addresses),
        "destination": hop.destination,
        "sent": hop.sent,
        "received": hop.received,
        "loss_ratio": None if hop.loss_ratio is None else round(hop.loss_ratio, 6),
        "loss_ci95": [round(low, 6), round(high, 6)],
        "rtt_ms": hop.rtt_ms(),
        "verdict": verdict.value,
        "markers": analysis.markers(hop),
    }


def _hop_ref(analysis: PathAnalysis, ttl: int | None) -> dict[str, Any] | None:
    if ttl is None:
        return None
    return {"ttl": ttl, "address": analysis.hops[ttl - 1].address}


def report_dict(run: PathRun, analysis: PathAnalysis, names: ReverseNames) -> dict[str, Any]:
    settings = run.settings
    start = analysis.judgement.path_loss_start_ttl
    furthest = analysis.judgement.furthest_ttl
    path_loss = None
    if start is not None and furthest is not None:
        end = analysis.hops[furthest - 1]
        path_loss = {
            "start_ttl": start,
            "loss_ratio": end.loss_ratio,
            "loss_ci95": [round(v, 6) for v in end.loss_interval],
        }
    return {
        "target": settings.flow.target,
        "flow": settings.flow.describe(),
        "started_at": _iso(run.started_unix_ns),
        "duration_s": run.duration_s,
        "rounds_requested": settings.count,
        "rounds": len(run.rounds),
        "interval_s": settings.interval,
        "timeout_s": settings.timeout,
        "max_ttl": settings.max_ttl,
        "stopped": run.stopped,
        "reached": any(hop.destination for hop in analysis.hops),
        "hops": [_hop_dict(hop, analysis, names) for hop in analysis.hops],
        "border": _hop_ref(analysis, analysis.border.border_ttl),
        "egress": _hop_ref(analysis, analysis.border.egress_ttl),
        "border_basis": analysis.border.basis,
        "rate_limited_ttls": [
            hop.ttl for hop in analysis.hops if "rate_limited" in analysis.markers(hop)
        ],
        "path_loss": path_loss,
        "path_changes": [change_dict(change) for change in run.changes],
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _note(hop: HopStats, analysis: PathAnalysis) -> str:
    notes: list[str] = []
    marks = analysis.markers(hop)
    notes.extend(mark for mark in ("border", "egress") if mark in marks)
    verdict = analysis.judgement.verdicts[hop.ttl - 1]
    if verdict in _NOTES:
        notes.append(_NOTES[verdict])
    if "path_loss_start" in marks:
        notes.append("path loss starts here")
    if hop.destination:
        notes.append("target")
    return "; ".join(notes)


_HEADER = (
    f"{'TTL':>3}  {'host':<36} {'sent':>5} {'loss':>7} {'95% interval':>15} "
    f"{'min':>7} {'mean':>7} {'p99':>7} {'max':>7}  note"
)


def _hop_lines(hop: HopStats, analysis: PathAnalysis, names: ReverseNames) -> list[str]:
    address = hop.address
    name = names.get(address)
    host = "???" if address is None else (f"{name} ({address})" if name else address)
    loss = "-" if hop.loss_ratio is None else f"{100 * hop.loss_ratio:.1f}%"
    low, high = hop.loss_interval
    rtt = hop.rtt_ms() or {}
    interval = f"{100 * low:.1f}-{100 * high:.1f}%"
    times = " ".join(f"{_ms(rtt.get(key)):>7}" for key in ("min", "mean", "p99", "max"))
    line = f"{hop.ttl:>3}  {host:<36} {hop.sent:>5} {loss:>7} {interval:>15} {times}"
    lines = [f"{line}  {_note(hop, analysis)}".rstrip()]
    # Other addresses at this TTL: ECMP the trace could not avoid, or a path change.
    lines.extend(f"     {other} ({count} answers)" for other, count in hop.addresses[1:])
    return lines


def table_text(run: PathRun, analysis: PathAnalysis, names: ReverseNames, live: bool) -> str:
    flow = run.settings.flow
    ports = "" if flow.probe == "icmp" else f" {flow.flow_id}->{flow.port}"
    lines = [
        f"path to {flow.target} ({flow.probe}{ports} from {flow.source}): "
        f"round {len(run.rounds)}/{run.settings.count}"
        + (f", stopped: {run.stopped}" if run.stopped else ""),
        _HEADER,
    ]
    for hop in analysis.hops:
        lines.extend(_hop_lines(hop, analysis, names))
    if not analysis.hops:
        lines.append("  (no answer yet)")
    changes = run.changes[-_LIVE_CHANGES:] if live else run.changes
    lines.extend(change_line(change) for change in changes)
    return "\n".join(lines)
