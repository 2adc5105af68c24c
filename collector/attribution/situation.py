"""Every signal of one attribution run as per-slot states: what the rules read.

Built once per run from the topology and the signals: each check's state,
each service item's customer view (up, down, unknown), its local view, each
agent's presence (did it run then, as its rounds or batch windows show, even if
they arrived later), host findings, inbound traffic against its baseline,
egress-loss verdicts, node reachability, and maintenance.
"""

from __future__ import annotations

import bisect
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from collector.attribution.model import CheckRef, NodeRole, TopoItem, Topology, Vantage
from collector.attribution.signals import EgressRound, HostRound, Signals, median_gap
from collector.attribution.slots import (
    FAIL,
    NONE,
    OK,
    Slots,
    check_states,
    make_slots,
    mark,
    mark_within,
)
from collector.sla.model import MINUTE, SECOND, Cause

# Finding kinds that are the customer's doing on a server or VM (their data filled the
# disk, their workload the memory); on a hypervisor they are the provider's.
CUSTOMER_RESOURCE_FINDINGS = frozenset({"disk_full", "inodes_full", "memory_full"})


@dataclass(frozen=True, slots=True)
class Settings:
    # How many intervals a round stands for when no next round follows.
    hold_intervals: float = 1.5
    # Failed rounds in a row before the customer view calls an item down.
    confirm_rounds: int = 2
    # Inbound packets/s this many times the node's baseline (and at least the floor)
    # is an attack, not customers.
    ddos_factor: float = 10.0
    ddos_floor_pps: float = 5000.0
    # Slots: the shortest check interval, within these bounds.
    min_slot_ns: int = SECOND
    max_slot_ns: int = MINUTE
    # A round that reached the collector this long after it ended (and three times the
    # agent's usual delay) came from the spool: backfill.
    late_ns: int = 5 * SECOND


@dataclass
class Situation:
    topology: Topology
    signals: Signals
    slots: Slots
    settings: Settings
    check_state: dict[tuple[str, str], bytearray] = field(default_factory=dict)
    # The same with failures shorter than ``confirm_rounds`` counted as passed.
    confirmed_state: dict[tuple[str, str], bytearray] = field(default_factory=dict)
    # The confirmed failures of each check as exact spans: incidents' edges.
    failures: dict[tuple[str, str], list[tuple[int, int]]] = field(default_factory=dict)
    item_view: dict[str, bytearray] = field(default_factory=dict)  # customer view
    item_local: dict[str, bytearray] = field(default_factory=dict)
    agent_present: dict[str, bytearray] = field(default_factory=dict)
    agent_late: dict[str, bytearray] = field(default_factory=dict)
    node_reach: dict[str, bytearray] = field(default_factory=dict)
    # Per node, how many slots its views' longest check interval spans.
    view_slots: dict[str, int] = field(default_factory=dict)
    findings: dict[str, list[tuple[tuple[str, str], ...]]] = field(default_factory=dict)
    flood: dict[str, bytearray] = field(default_factory=dict)  # by node
    egress_excess: dict[str, bytearray] = field(default_factory=dict)  # by agent
    beyond_excess: dict[str, bytearray] = field(default_factory=dict)  # by agent
    # Each agent's usable egress windows: the span each stands for, the loss it shows.
    loss_windows: dict[str, list[LossWindow]] = field(default_factory=dict)
    maintenance: dict[str, list[str]] = field(default_factory=dict)  # item -> note per slot
    _starts: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # rounds' starts
    # Per agent: the (start, end) of rounds that came late, and the newest batch window end.
    late_spans: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    reported_until: dict[str, int] = field(default_factory=dict)
    _unreachable: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    segment_signs: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # rules' cache

    # -- queries the rules use ---------------------------------------------

    def view_failures(self, item_id: str) -> list[tuple[int, int]]:
        """The confirmed failures of the item's customer-view checks, as exact spans."""
        return [
            span
            for ref in customer_view(self.topology.items[item_id])
            for span in self.failures.get((ref.agent_id, ref.check_id), ())
        ]

    def failed_class(self, agent_id: str, check_id: str, k: int) -> str | None:
        """The error class of the check's failed round standing in slot ``k`` (None when
        that round passed or there is none)."""
        if self.check_state.get((agent_id, check_id), b"")[k : k + 1] != bytes((FAIL,)):
            return None
        rounds = self.signals.checks[(agent_id, check_id)].rounds
        starts = self._starts.get((agent_id, check_id))
        if starts is None:
            starts = self._starts[(agent_id, check_id)] = [r.start_ns for r in rounds]
        index = bisect.bisect_left(starts, self.slots.start_of(k + 1)) - 1
        while index >= 0 and rounds[index].ok:
            index -= 1
        return rounds[index].error_class if index >= 0 else None

    def agent_of(self, node_id: str) -> str | None:
        return self.topology.nodes[node_id].agent

    def node_findings(self, node_id: str, k: int) -> tuple[tuple[str, str], ...]:
        agent = self.agent_of(node_id)
        return self.findings[agent][k] if agent in self.findings else ()

    def customer_findings(self, node_id: str, k: int) -> list[tuple[str, str]]:
        return self.customer_findings_any(node_id, self.node_findings(node_id, k))

    def customer_findings_any(
        self, node_id: str, findings: Iterable[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """The findings that are the customer's doing on this node."""
        node = self.topology.nodes[node_id]
        resource = node.role in (NodeRole.SERVER, NodeRole.VM)
        return [
            (kind, subject)
            for kind, subject in findings
            if (resource and kind in CUSTOMER_RESOURCE_FINDINGS)
            or (kind == "process_missing" and subject in node.customer_processes)
        ]

    def present(self, agent_id: str | None, k: int) -> bool:
        return agent_id is not None and flagged(self.agent_present, agent_id, k)

    def nearby(self, node_id: str, k: int) -> range:
        """Slot ``k`` and those within one check interval of the node's views around it:
        two nodes cut off at once fail their checks up to an interval apart (each check
        has its own phase), so a verdict about several nodes looks that far."""
        width = self.view_slots.get(node_id, 1)
        return range(max(0, k - width), min(self.slots.count, k + width + 1))

    def down_near(self, node_id: str, k: int) -> bool:
        reach = self.node_reach.get(node_id)
        return reach is not None and any(reach[j] == FAIL for j in self.nearby(node_id, k))

    def independent_nodes(self, segment_id: str) -> list[str]:
        """The segment's nodes that stand on their own (VMs follow their hypervisor),
        and that the customer view knows about (they, or their VMs, have items)."""
        return [
            n
            for n in self.topology.segments[segment_id].nodes
            if self.topology.nodes[n].parent is None and n in self.node_reach
        ]


def flagged(marks: dict[str, bytearray], key: str, k: int) -> bool:
    """Whether ``marks[key]`` is set in slot ``k`` (unset when ``key`` has no marks)."""
    found = marks.get(key)
    return found is not None and found[k] != 0


def build_situation(
    topology: Topology, signals: Signals, start_ns: int, end_ns: int, settings: Settings
) -> Situation:
    slots = make_slots(start_ns, end_ns, _step(topology, signals, settings))
    s = Situation(topology, signals, slots, settings)
    for key, check in signals.checks.items():
        s.check_state[key], s.confirmed_state[key], s.failures[key] = check_states(
            check, slots, settings.hold_intervals, settings.confirm_rounds
        )
    _agents(s)
    for item in topology.items.values():
        s.item_view[item.id] = _combine(s.confirmed_state, customer_view(item), slots)
        s.item_local[item.id] = _local_view(s, item)
    _nodes(s)
    _host(s)
    _egress(s)
    _maintenance(s)
    return s


def _step(topology: Topology, signals: Signals, settings: Settings) -> int:
    intervals = [
        signals.checks[(c.agent_id, c.check_id)].interval_ns
        for item in topology.items.values()
        for c in item.checks
        if (c.agent_id, c.check_id) in signals.checks
    ]
    step = min(intervals, default=settings.max_slot_ns)
    return max(settings.min_slot_ns, min(settings.max_slot_ns, step))


def customer_view(item: TopoItem) -> list[CheckRef]:
    """The checks that say whether customers can use the item: from outside if any
    run there, else from the provider's other nodes, else from the node itself."""
    for vantages in ((Vantage.OUTSIDE,), (Vantage.PEER, Vantage.SITE), (Vantage.LOCAL,)):
        chosen = [c for c in item.checks if c.vantage in vantages]
        if chosen:
            return chosen
    return []


def _local_view(s: Situation, item: TopoItem) -> bytearray:
    """The item's local checks, only where their agent was present: a round held on from
    before the agent died is no evidence that the item still worked."""
    local = [c for c in item.checks if c.vantage == Vantage.LOCAL]
    return _combine(s.check_state, local, s.slots, s.agent_present)


def _combine(
    by_check: dict[tuple[str, str], bytearray],
    checks: list[CheckRef],
    slots: Slots,
    present: dict[str, bytearray] | None = None,
) -> bytearray:
    """Down where any of the checks fails, up where all known ones pass, else unknown;
    with ``present``, a check counts only in slots its agent was present."""
    combined = bytearray(slots.count)
    for ref in checks:
        states = by_check.get((ref.agent_id, ref.check_id))
        mask = present.get(ref.agent_id) if present is not None else None
        if states is None or (present is not None and mask is None):
            continue
        for k, value in enumerate(states):
            if mask is not None and not mask[k]:
                continue
            if value == FAIL or (value == OK and combined[k] == NONE):
                combined[k] = value
    return combined


def _agents(s: Situation) -> None:
    """Present in a slot the agent ran through: its batch windows (coverage, however late
    they arrived) cover the whole slot. A slot the agent died in is not one it ran
    through: its last results there are no evidence that the node still worked. Without
    any coverage (results imported from elsewhere), its rounds tell. Late where rounds of
    the slot arrived long after they ended (see ``late_rounds``)."""
    rounds: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for (agent_id, _check), check in s.signals.checks.items():
        rounds[agent_id] += ((r.start_ns, r.start_ns + max(r.duration_ns, 1)) for r in check.rounds)
    for agent_id in s.topology.agent_nodes:
        coverage = s.signals.coverage.get(agent_id, ())
        s.agent_present[agent_id] = (
            mark_within(s.slots, coverage) if coverage else mark(s.slots, rounds[agent_id])
        )
        s.late_spans[agent_id] = set(late_rounds(s, agent_id))
        s.agent_late[agent_id] = mark(s.slots, s.late_spans[agent_id])
        if coverage:
            s.reported_until[agent_id] = max(end for _, end in coverage)


def late_rounds(s: Situation, agent_id: str) -> list[tuple[int, int]]:
    """Rounds that reached the collector long after the agent's usual delay (its median
    from a round's end to its batch's arrival: the flush interval and the network): at
    least ``late_ns`` and three times that. They came from the spool, after a partition."""
    found = [
        (r.start_ns, r.start_ns + max(r.duration_ns, 1), r.received_ns)
        for (agent, _check), check in s.signals.checks.items()
        if agent == agent_id
        for r in check.rounds
        if r.received_ns
    ]
    if not found:
        return []
    usual = statistics.median_low(received - end for _, end, received in found)
    bound = max(s.settings.late_ns, 3 * usual)
    return [(start, end) for start, end, received in found if received - end > bound]


def _nodes(s: Situation) -> None:
    """A node is reachable where any of its items is up from the customer view, and
    unreachable where every item with a known view is down. A hypervisor without items
    of its own is as reachable as the VMs on it."""
    for node_id in s.topology.nodes:
        items = list(s.topology.items_on(node_id))
        if not items:
            items = [i for vm in s.topology.children(node_id) for i in s.topology.items_on(vm)]
        if not items:
            continue
        intervals = [
            s.signals.checks[(c.agent_id, c.check_id)].interval_ns
            for item in items
            for c in customer_view(s.topology.items[item])
            if (c.agent_id, c.check_id) in s.signals.checks
        ]
        s.view_slots[node_id] = max(1, -(-max(intervals, default=0) // s.slots.step_ns))
        reach = bytearray(s.slots.count)
        views = [s.item_view[i] for i in items]
        for k in range(s.slots.count):
            states = [view[k] for view in views]
            if OK in states:
                reach[k] = OK
            elif FAIL in states:
                reach[k] = FAIL
        s.node_reach[node_id] = reach


def _host(s: Situation) -> None:
    for agent_id, rounds in s.signals.host.items():
        interval = s.signals.host_interval_ns.get(agent_id, MINUTE)
        per_slot: list[tuple[tuple[str, str], ...]] = [()] * s.slots.count
        for index, r in enumerate(rounds):
            end = r.start_ns + int(interval * s.settings.hold_intervals)
            if index + 1 < len(rounds):
                end = min(end, rounds[index + 1].start_ns)
            for k in s.slots.covering(r.start_ns, end):
                per_slot[k] = r.findings
        s.findings[agent_id] = per_slot
        node_id = s.topology.agent_nodes[agent_id]
        s.flood[node_id] = mark(s.slots, _floods(rounds, interval, s.settings))


def _floods(
    rounds: tuple[HostRound, ...], interval: int, settings: Settings
) -> list[tuple[int, int]]:
    """Rounds whose inbound packet rate is far above the node's baseline (the median
    of its rounds in the run: an attack is the exception, not the median)."""
    if len(rounds) < 5:
        return []
    baseline = statistics.median(r.rx_packets_per_second for r in rounds)
    bound = max(settings.ddos_floor_pps, baseline * settings.ddos_factor)
    return [(r.start_ns, r.start_ns + interval) for r in rounds if r.rx_packets_per_second > bound]


def _egress(s: Situation) -> None:
    """Egress-loss windows, each standing until the next (at most ``hold`` intervals),
    as the rounds of other checks do, and what each shows: loss toward the egress hop
    (``network``), beyond it only (``upstream``), or neither. A window too short to
    decide (undecided) between two that show the same loss continues it: it does not
    contradict them. A window of a node that was unreachable meanwhile says nothing
    about loss: the outage explains it (a cut loses every echo)."""
    for agent_id, rounds in s.signals.egress.items():
        node_id = s.topology.agent_nodes[agent_id]
        usable = [r for r in rounds if not _node_down_during(s, node_id, r.start_ns, r.end_ns)]
        held = _held_windows(usable, s.settings.hold_intervals)
        shows = _bridge_undecided([_window_shows(r) for r in usable])
        windows = [LossWindow(r, span, cause) for (r, span), cause in zip(held, shows, strict=True)]
        s.loss_windows[agent_id] = windows
        s.egress_excess[agent_id] = mark(
            s.slots, [w.span for w in windows if w.shows == Cause.NETWORK]
        )
        s.beyond_excess[agent_id] = mark(
            s.slots, [w.span for w in windows if w.shows == Cause.UPSTREAM]
        )


_UNDECIDED = "undecided"


def _window_shows(r: EgressRound) -> Cause | str | None:
    """``network`` (Excess Packet Loss toward the egress hop), ``upstream`` (the hop is
    fine, the address beyond it loses more than the threshold), None (no excess loss),
    or undecided."""
    if r.verdict == "excess":
        return Cause.NETWORK
    if r.verdict not in ("clear", "rate_limited"):
        return _UNDECIDED
    if r.beyond_lower is None or r.beyond_upper is None:
        return None
    if r.beyond_lower > r.threshold:
        return Cause.UPSTREAM
    return _UNDECIDED if r.beyond_upper > r.threshold else None


def _bridge_undecided(shows: list[Cause | str | None]) -> list[Cause | None]:
    result: list[Cause | None] = []
    for index, shown in enumerate(shows):
        if isinstance(shown, Cause) or shown is None:
            result.append(shown)
            continue
        before = result[-1] if result else None
        after = next((x for x in shows[index + 1 :] if x != _UNDECIDED), None)
        result.append(before if before is not None and before == after else None)
    return result


@dataclass(frozen=True, slots=True)
class LossWindow:
    """One egress-loss window, the span it stands for, and the loss it shows."""

    round: EgressRound
    span: tuple[int, int]
    shows: Cause | None


def _held_windows(
    rounds: list[EgressRound], hold_intervals: float
) -> list[tuple[EgressRound, tuple[int, int]]]:
    interval = median_gap(r.start_ns for r in rounds)
    held = []
    for index, r in enumerate(rounds):
        end = max(r.end_ns, r.start_ns + int(interval * hold_intervals))
        if index + 1 < len(rounds):
            end = max(r.end_ns, min(end, rounds[index + 1].start_ns))
        held.append((r, (r.start_ns, end)))
    return held


def _node_down_during(s: Situation, node_id: str, start_ns: int, end_ns: int) -> bool:
    """The node, or the hypervisor it runs on, unreachable at any moment of the span: all
    its items failing from their customer view (exact rounds, not slots: a window that
    began as the outage ended still lost echoes to it)."""
    node = s.topology.nodes.get(node_id)
    for candidate in (node_id, node.parent if node else None):
        spans = _unreachable_spans(s, candidate) if candidate else []
        if any(a < end_ns and b > start_ns for a, b in spans):
            return True
    return False


def _unreachable_spans(s: Situation, node_id: str) -> list[tuple[int, int]]:
    """When every item on the node failed at once, as exact spans."""
    cached = s._unreachable.get(node_id)
    if cached is not None:
        return cached
    items = s.topology.items_on(node_id)
    common = _union(s.view_failures(items[0])) if items else []
    for item in items[1:]:
        common = _intersect(common, _union(s.view_failures(item)))
    s._unreachable[node_id] = common
    return common


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _intersect(left: list[tuple[int, int]], right: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(max(a, c), min(b, d)) for a, b in left for c, d in right if max(a, c) < min(b, d)]


def _maintenance(s: Situation) -> None:
    for item_id, windows in s.signals.maintenance.items():
        notes = [""] * s.slots.count
        for start, end, note in windows:
            for k in s.slots.covering(start, end):
                notes[k] = note or "maintenance window"
        s.maintenance[item_id] = notes
