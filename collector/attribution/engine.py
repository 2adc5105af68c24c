"""Attribution over a span: per slot a verdict for every down service item, then
root incidents.

    signals --situation--> per-slot states --rules--> verdict per (item, slot)
    verdicts --by root--> incidents (children affected, not separate faults)

A slot's verdicts are grouped by their root: a segment's cut is one incident
with every item in it affected; a hypervisor's failure is one incident with its
own items and its VMs' items affected. Consecutive slots with the same root and
cause make one incident; a single slot without that verdict between two runs
(a round that straddled the change) does not split it. Maintenance windows
turn an item's verdict into ``maintenance`` and keep the measured cause as the
observed one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from collector.attribution.evidence import render_evidence
from collector.attribution.model import (
    AffectedItem,
    AttributionResult,
    Confidence,
    Incident,
    IncidentKind,
    ItemState,
    Root,
    Topology,
)
from collector.attribution.rules import Sign, Verdict, egress_root, item_verdict
from collector.attribution.signals import Signals
from collector.attribution.situation import (
    LossWindow,
    Settings,
    Situation,
    build_situation,
    flagged,
)
from collector.attribution.slots import FAIL, NONE, OK
from collector.sla.model import SECOND, Cause

__all__ = ["Settings", "attribute"]

# Runs of one root and cause separated by at most this many slots are one incident.
BRIDGE_SLOTS = 1
_CONFIDENCE_ORDER = [Confidence.LOW, Confidence.MEDIUM, Confidence.HIGH]


@dataclass(frozen=True, slots=True)
class _Key:
    """What must stay the same for slots to be one incident."""

    kind: IncidentKind
    root: Root
    cause: Cause
    observed: Cause | None


@dataclass
class _Run:
    key: _Key
    first: int
    last: int
    items: set[str] = field(default_factory=set)
    affected: dict[str, str] = field(default_factory=dict)  # item -> node
    signs: dict[Sign, None] = field(default_factory=dict)  # ordered set
    missing: dict[str, None] = field(default_factory=dict)
    confidence: Confidence = Confidence.HIGH


def attribute(
    topology: Topology,
    signals: Signals,
    start_ns: int,
    end_ns: int,
    settings: Settings | None = None,
) -> AttributionResult:
    s = build_situation(topology, signals, start_ns, end_ns, settings or Settings())
    runs: dict[_Key, list[_Run]] = defaultdict(list)
    by_item = {
        item_id: _edges_absorbed(s, item_id, _verdicts(s, item_id)) for item_id in s.topology.items
    }
    for k in range(s.slots.count):
        for item_id, verdicts in by_item.items():
            verdict = verdicts[k]
            if verdict is not None:
                key = _outage_key(s, item_id, k, verdict)
                _extend(runs[key], key, k, verdict, item_id, s)
        for key, verdict, item_id in _degraded(s, k):
            _extend(runs[key], key, k, verdict, item_id, s)
    incidents = [_incident(run, s) for key_runs in runs.values() for run in key_runs]
    incidents.sort(key=lambda i: (i.start_ns, i.root.scope, i.root.id, i.kind))
    return AttributionResult(start_ns, end_ns, tuple(incidents), _states(s))


def _verdicts(s: Situation, item_id: str) -> list[Verdict | None]:
    """The item's verdict in every slot it is down (None where it is not). In slots past
    the newest results of its node's agent, the verdict of the slot before stands."""
    verdicts: list[Verdict | None] = [None] * s.slots.count
    view = s.item_view[item_id]
    for k in range(s.slots.count):
        if view[k] != FAIL:
            continue
        before = verdicts[k - 1] if k else None
        pending = before is not None and _pending(s, item_id, k)
        verdicts[k] = before if pending else item_verdict(s, item_id, k)
    return verdicts


def _edges_absorbed(
    s: Situation, item_id: str, verdicts: list[Verdict | None]
) -> list[Verdict | None]:
    """Within one outage of the item, a different verdict lasting at most a check
    interval at its very start or end gives way to its neighbour: there the item's local
    round still standing is from before (or after) the outage, since every check has
    its own phase; it is no evidence of a cause of its own."""
    width = _absorb_slots(s, item_id)
    result = list(verdicts)
    for first, last in _down_runs(result):
        parts = _same_verdict_parts(result, first, last)
        if len(parts) < 2:
            continue
        (a, b), (c, d) = parts[0], parts[1]
        if b - a <= width:
            result[a:b] = [result[c]] * (b - a)
        (a, b), (c, d) = parts[-2], parts[-1]
        if d - c <= width and len(parts) > 1:
            result[c:d] = [result[a]] * (d - c)
    return result


def _absorb_slots(s: Situation, item_id: str) -> int:
    """How long a round of the item's checks may stand, in slots."""
    intervals = [
        s.signals.checks[(c.agent_id, c.check_id)].interval_ns
        for c in s.topology.items[item_id].checks
        if (c.agent_id, c.check_id) in s.signals.checks
    ]
    longest = int(max(intervals, default=s.slots.step_ns) * s.settings.hold_intervals)
    return max(1, -(-longest // s.slots.step_ns))


def _down_runs(verdicts: list[Verdict | None]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for k, verdict in enumerate(verdicts):
        if verdict is None:
            continue
        if runs and runs[-1][1] == k:
            runs[-1] = (runs[-1][0], k + 1)
        else:
            runs.append((k, k + 1))
    return runs


def _same_verdict_parts(
    verdicts: list[Verdict | None], first: int, last: int
) -> list[tuple[int, int]]:
    parts: list[tuple[int, int]] = []
    for k in range(first, last):
        verdict = verdicts[k]
        if parts and verdicts[parts[-1][0]] == verdict:
            parts[-1] = (parts[-1][0], k + 1)
        else:
            parts.append((k, k + 1))
    return parts


# An agent whose newest batch window ended less than this before the end of the span is
# taken to be alive, its results in flight (batches come every flush interval).
PENDING_NS = 30 * SECOND


def _pending(s: Situation, item_id: str, k: int) -> bool:
    """Slot ``k`` lies past the newest results of the agent that speaks for the item's
    node (its own, or its hypervisor's for a VM), and that agent is not overdue: the
    slot is not decided yet, the verdict of the slot before stands."""
    node = s.topology.nodes[s.topology.items[item_id].node]
    agent = node.agent or (s.agent_of(node.parent) if node.parent else None)
    until = s.reported_until.get(agent or "")
    if until is None:
        return False
    return s.slots.start_of(k + 1) > until and s.slots.start_of(s.slots.count) - until <= PENDING_NS


def _outage_key(s: Situation, item_id: str, k: int, verdict: Verdict) -> _Key:
    in_window = bool(s.maintenance.get(item_id, ())) and s.maintenance[item_id][k] != ""
    if in_window:
        return _Key(IncidentKind.OUTAGE, verdict.root, Cause.MAINTENANCE, verdict.cause)
    return _Key(IncidentKind.OUTAGE, verdict.root, verdict.cause, None)


def _degraded(s: Situation, k: int) -> list[tuple[_Key, Verdict, str]]:
    """Excess Packet Loss measured from a node: toward the egress hop (``network``, the
    border-egress path) or beyond it only (``upstream``). Items on the node (and on its
    VMs) are the ones that suffer it."""
    found: list[tuple[_Key, Verdict, str]] = []
    for agent_id in sorted(s.egress_excess):
        node = s.topology.nodes[s.topology.agent_nodes[agent_id]]
        if flagged(s.egress_excess, agent_id, k):
            cause, root = Cause.NETWORK, egress_root(s, node.segment)
        elif flagged(s.beyond_excess, agent_id, k):
            egress = s.topology.segments[node.segment].egress or "egress"
            cause, root = (
                Cause.UPSTREAM,
                Root(egress_root(s, node.segment).scope, f"beyond-{egress}"),
            )
        else:
            continue
        verdict = Verdict(cause, root, Confidence.HIGH, (Sign("egress", agent_id),), (), True)
        key = _Key(IncidentKind.DEGRADED, root, cause, None)
        for item_id in _items_on_and_under(s.topology, node.id):
            found.append((key, verdict, item_id))
    return found


def _items_on_and_under(topology: Topology, node_id: str) -> list[str]:
    nodes = (node_id, *topology.children(node_id))
    return [item for n in nodes for item in topology.items_on(n)]


def _extend(
    runs: list[_Run], key: _Key, k: int, verdict: Verdict, item_id: str, s: Situation
) -> None:
    run = runs[-1] if runs else None
    if run is None or k - run.last > BRIDGE_SLOTS + 1:
        run = _Run(key, k, k)
        runs.append(run)
    run.last = k
    if verdict.affected:
        run.affected[item_id] = s.topology.items[item_id].node
    else:
        run.items.add(item_id)
    run.signs.update(dict.fromkeys(verdict.signs))
    run.missing.update(dict.fromkeys(verdict.missing))
    order = _CONFIDENCE_ORDER.index
    run.confidence = min(run.confidence, verdict.confidence, key=order)


def _edges(run: _Run, s: Situation) -> tuple[int, int]:
    """The incident's start and end: the first and last failed round (or lossy window)
    behind its slots. A slot is a check interval long and rounds say when in it; the
    edges then do not move with the slot grid from one run to the next.

    The rounds are those overlapping the incident's slots, and every failed round that
    touches them in turn (a round that began in the slot after the last one is still the
    same failure), at most one slot beyond either end."""
    start_ns, end_ns = s.slots.start_of(run.first), s.slots.start_of(run.last + 1)
    step = s.slots.step_ns
    near = sorted(
        (a, b) for a, b in _failed_spans(run, s) if a < end_ns + step and b > start_ns - step
    )
    core = [(a, b) for a, b in near if a < end_ns and b > start_ns]
    if not core:
        return start_ns, end_ns
    first, last = min(a for a, _ in core), max(b for _, b in core)
    for a, b in near:  # sorted by start: each touching round extends the end
        if first <= a <= last:
            last = max(last, b)
    for a, b in reversed(near):  # and each touching one before extends the start
        if first <= b <= last or a <= first <= b:
            first = min(first, a)
    return max(start_ns - step, first), min(end_ns + step, last)


def _failed_spans(run: _Run, s: Situation) -> list[tuple[int, int]]:
    if run.key.kind == IncidentKind.OUTAGE:
        return [span for item in {*run.items, *run.affected} for span in s.view_failures(item)]
    return [w.span for w in _lossy_windows(run, s)]


def _lossy_windows(run: _Run, s: Situation) -> list[LossWindow]:
    """The windows behind a degraded run."""
    agents = [sign.subject for sign in run.signs if sign.signal == "egress"]
    return [w for a in agents for w in s.loss_windows.get(a, ()) if w.shows == run.key.cause]


def _still_open(run: _Run, s: Situation) -> bool:
    """Nothing newer contradicts it: for an outage, its items' views know nothing after
    its last slot (results of the newest rounds are still to come); for loss, the newest
    window of one of its agents still shows it (the next may hold the loss on)."""
    if run.key.kind == IncidentKind.OUTAGE:
        later = range(run.last + 1, s.slots.count)
        items = {*run.items, *run.affected}
        return all(s.item_view[item][k] == NONE for item in items for k in later)
    agents = {sign.subject for sign in run.signs if sign.signal == "egress"}
    newest = [s.loss_windows[a][-1] for a in agents if s.loss_windows.get(a)]
    return any(w.shows == run.key.cause for w in newest)


def _incident(run: _Run, s: Situation) -> Incident:
    start_ns, end_ns = _edges(run, s)
    items = tuple(sorted(run.items))
    affected = tuple(
        AffectedItem(item_id, node, run.key.root.id)
        for item_id, node in sorted(run.affected.items())
        if item_id not in run.items
    )
    return Incident(
        kind=run.key.kind,
        root=run.key.root,
        cause=run.key.cause,
        start_ns=start_ns,
        end_ns=end_ns,
        items=items,
        affected=affected,
        confidence=run.confidence,
        evidence=render_evidence(list(run.signs), s, start_ns, end_ns, run.key.root),
        missing=tuple(run.missing),
        observed_cause=run.key.observed,
        open=_still_open(run, s),
    )


def _states(s: Situation) -> dict[str, ItemState]:
    """Each item's state in the newest slot its customer view knows (the last slot may
    not have results yet: rounds still running)."""
    states: dict[str, ItemState] = {}
    for item_id, view in s.item_view.items():
        known = [k for k in range(len(view) - 1, max(-1, len(view) - 4), -1) if view[k]]
        if not known:
            states[item_id] = ItemState.UNKNOWN
            continue
        k = known[0]
        if view[k] == FAIL:
            states[item_id] = ItemState.DOWN
        elif view[k] == OK and any(
            item_id in _items_on_and_under(s.topology, s.topology.agent_nodes[a])
            for a in s.egress_excess
            if flagged(s.egress_excess, a, k) or flagged(s.beyond_excess, a, k)
        ):
            states[item_id] = ItemState.DEGRADED
        else:
            states[item_id] = ItemState.UP
    return states
