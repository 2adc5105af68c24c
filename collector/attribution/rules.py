"""The decision table (docs/attribution.md): one verdict per down service item and slot.

Checked in this order, the first that holds decides:

1. the item's node is a VM whose hypervisor is down (host): affected by it;
2. every node of its segment is unreachable from outside: the segment's uplink
   (``network``) when an agent inside still ran (now or by later backfill),
   else ``unknown`` until one does;
3. the node's agent is silent: ``host`` when peers are reachable (the fault is
   the node's), else ``unknown``;
4. inbound traffic far above the node's baseline: ``ddos``;
5. the item's local check fails: ``customer`` with customer-side host findings,
   ``host`` after a reboot, else ``service``;
6. the local check passes: ``upstream`` when loss beyond the egress hop is seen
   while the hop itself is fine, else ``network`` (the path to the item);
7. nothing local to compare with: ``customer`` with customer-side findings,
   ``service`` when the node answered every failing check itself (refused, a bad
   status: the path works), else ``unknown``, naming what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from collector.attribution.model import Confidence, Root, RootScope, Vantage
from collector.attribution.situation import Situation, customer_view, flagged
from collector.attribution.slots import FAIL, OK
from collector.sla.model import Cause


@dataclass(frozen=True, slots=True)
class Sign:
    """A signal a verdict rests on; rendered into evidence over the incident's span."""

    signal: str  # check, agent, findings, peers, segment, parent, egress, flood
    subject: str  # "agent/check", an agent, a node, a segment ...


@dataclass(frozen=True, slots=True)
class Verdict:
    cause: Cause
    root: Root
    confidence: Confidence
    signs: tuple[Sign, ...]
    missing: tuple[str, ...] = ()
    # Set when the item is down because of another root (its hypervisor, its segment).
    affected: bool = False


def item_verdict(s: Situation, item_id: str, k: int) -> Verdict:
    item = s.topology.items[item_id]
    node = s.topology.nodes[item.node]
    if node.parent is not None:
        parent = _parent_down(s, node.parent, k)
        if parent is not None:
            return _affected(parent, Sign("parent", node.parent))
    anchor = node.parent or node.id
    segment = segment_verdict(s, s.topology.nodes[anchor].segment, k)
    if segment is not None:
        return _affected(segment, Sign("segment", segment.root.id))
    if node.agent is not None and not s.present(node.agent, k):
        down = node_down_verdict(s, node.id, k)
        if down is not None:
            return down
    view = _view_signs(s, item_id)
    if flagged(s.flood, node.id, k):
        return Verdict(Cause.DDOS, _node_root(node.id), Confidence.MEDIUM,
                       (*view, Sign("flood", node.id)))  # fmt: skip
    local = s.item_local[item_id][k]
    if local == FAIL:
        return _local_failure(s, item_id, k, view)
    if local == OK:
        return _path_failure(s, item_id, k, view)
    return _no_local_view(s, item_id, k, view)


def _parent_down(s: Situation, parent_id: str, k: int) -> Verdict | None:
    """The hypervisor's host verdict at ``k`` or within one of its check intervals (its
    VM's checks may notice a check interval before or after its own)."""
    for j in sorted(s.nearby(parent_id, k), key=lambda j: abs(j - k)):
        verdict = node_down_verdict(s, parent_id, j)
        if verdict is not None and verdict.cause == Cause.HOST:
            return verdict
    return None


def _affected(root: Verdict, sign: Sign) -> Verdict:
    return Verdict(root.cause, root.root, root.confidence, (*root.signs, sign), root.missing, True)


def _node_root(node_id: str) -> Root:
    return Root(RootScope.NODE, node_id)


def _item_root(item_id: str) -> Root:
    return Root(RootScope.ITEM, item_id)


def _view_signs(s: Situation, item_id: str) -> tuple[Sign, ...]:
    """The item's checks from every vantage: what customers and the node itself saw."""
    return tuple(
        Sign("check", f"{c.agent_id}/{c.check_id}") for c in s.topology.items[item_id].checks
    )


def _local_failure(s: Situation, item_id: str, k: int, view: tuple[Sign, ...]) -> Verdict:
    node = s.topology.nodes[s.topology.items[item_id].node]
    findings = (Sign("findings", node.id),) if node.agent else ()
    signs = (*view, *findings, Sign("agent", node.agent or ""))
    if s.customer_findings(node.id, k):
        return Verdict(Cause.CUSTOMER, _item_root(item_id), Confidence.HIGH, signs)
    if any(kind == "rebooted" for kind, _ in s.node_findings(node.id, k)):
        return Verdict(Cause.HOST, _node_root(node.id), Confidence.HIGH, signs)
    if node.agent is None and _only_reachability(s, item_id):
        return Verdict(
            Cause.UNKNOWN, _node_root(node.id), Confidence.LOW, view,
            (f"{node.id} does not answer its hypervisor either; whether the guest stopped "
             "(the customer) or the virtualisation failed needs the VM's run state",),
        )  # fmt: skip
    if node.agent is None:
        return Verdict(Cause.SERVICE, _item_root(item_id), Confidence.MEDIUM, view,
                       (f"host findings of {node.id} (no agent runs there)",))  # fmt: skip
    return Verdict(Cause.SERVICE, _item_root(item_id), Confidence.HIGH, signs)


def _only_reachability(s: Situation, item_id: str) -> bool:
    """The item's local checks are all pings: failing, they say the node is gone."""
    local = [c for c in s.topology.items[item_id].checks if c.vantage == Vantage.LOCAL]
    kinds = {s.signals.checks[(c.agent_id, c.check_id)].kind for c in local
             if (c.agent_id, c.check_id) in s.signals.checks}  # fmt: skip
    return kinds == {"icmp"}


def _path_failure(s: Situation, item_id: str, k: int, view: tuple[Sign, ...]) -> Verdict:
    node = s.topology.nodes[s.topology.items[item_id].node]
    upstream = [a for a in _site_agents(s, node.site) if flagged(s.beyond_excess, a, k)]
    if upstream:
        signs = (*view, *(Sign("egress", a) for a in upstream))
        return Verdict(Cause.UPSTREAM, _beyond_root(s, node.segment), Confidence.MEDIUM, signs)
    agent = (Sign("agent", node.agent),) if node.agent else ()
    return Verdict(Cause.NETWORK, _item_root(item_id), Confidence.HIGH, (*view, *agent))


def _no_local_view(s: Situation, item_id: str, k: int, view: tuple[Sign, ...]) -> Verdict:
    node = s.topology.nodes[s.topology.items[item_id].node]
    if node.agent is not None and s.customer_findings(node.id, k):
        missing = f"a check of {item_id} from {node.id} itself (local vantage)"
        return Verdict(Cause.CUSTOMER, _item_root(item_id), Confidence.MEDIUM,
                       (*view, Sign("findings", node.id)), (missing,))  # fmt: skip
    if _node_answered(s, item_id, k):
        missing = f"host findings from {node.id} (customer-side or not)"
        return Verdict(Cause.SERVICE, _item_root(item_id), Confidence.MEDIUM, view, (missing,))
    return Verdict(
        Cause.UNKNOWN, _item_root(item_id), Confidence.LOW, view,
        (f"a check of {item_id} from {node.id} itself or its hypervisor (local vantage), "
         "to tell the node's own failure from the path's",),
    )  # fmt: skip


# Failures in which the node itself answered: the path to it works, the service does not.
ANSWERED = frozenset(
    {"connect_refused", "bad_status", "protocol_error", "read_timeout", "answer_mismatch"}
)


def _node_answered(s: Situation, item_id: str, k: int) -> bool:
    """Every failing customer-view check of the item failed with an answer from the node
    (refused, a bad status ...), not with silence (timeouts, unreachable)."""
    classes = [
        s.failed_class(c.agent_id, c.check_id, k) for c in customer_view(s.topology.items[item_id])
    ]
    failing = [c for c in classes if c is not None]
    return bool(failing) and all(c in ANSWERED for c in failing)


def _site_agents(s: Situation, site: str) -> list[str]:
    return sorted(
        agent
        for agent, node_id in s.topology.agent_nodes.items()
        if s.topology.nodes[node_id].site == site
    )


def _beyond_root(s: Situation, segment_id: str) -> Root:
    egress = s.topology.segments[segment_id].egress or "egress"
    return Root(RootScope.PATH, f"beyond-{egress}")


def egress_root(s: Situation, segment_id: str) -> Root:
    segment = s.topology.segments[segment_id]
    return Root(RootScope.PATH, f"{segment.border or 'border'}-{segment.egress or 'egress'}")


# -- node and segment ----------------------------------------------------------


def node_down_verdict(s: Situation, node_id: str, k: int) -> Verdict | None:
    """A node unreachable with its agent silent: its host, if peers show the network
    around it works; None while the node is reachable or its agent still runs."""
    node = s.topology.nodes[node_id]
    # Without an agent there is no silence to read: no host verdict from this rule. The
    # node's items go down up to a check interval apart (each check has its own phase).
    if node.agent is None or s.present(node.agent, k) or not s.down_near(node_id, k):
        return None
    signs = (*(Sign("check", f"{c.agent_id}/{c.check_id}") for item in s.topology.items_on(node_id)
               for c in s.topology.items[item].checks),
             Sign("agent", node.agent or ""), Sign("findings", node_id))  # fmt: skip
    peers = _reachable_peers(s, node_id, k)
    if peers:
        return Verdict(Cause.HOST, _node_root(node_id), Confidence.MEDIUM,
                       (*signs, Sign("peers", ",".join(peers))))  # fmt: skip
    return Verdict(
        Cause.UNKNOWN,
        _node_root(node_id),
        Confidence.LOW,
        signs,
        (f"a reachable peer of {node_id} to tell its host's failure from its network's",),
    )


def _reachable_peers(s: Situation, node_id: str, k: int) -> list[str]:
    node = s.topology.nodes[node_id]
    same_segment = [n for n in s.independent_nodes(node.segment) if n != node_id]
    candidates = same_segment or [
        n for n, other in s.topology.nodes.items()
        if other.site == node.site and n != node_id and n in s.node_reach
    ]  # fmt: skip
    return [n for n in candidates if s.node_reach[n][k] == OK]


def _segment_signs(s: Situation, segment_id: str) -> tuple[Sign, ...]:
    """The segment, its nodes' checks and its agents (the same for every slot: cached)."""
    cached = s.segment_signs.get(segment_id)
    if cached is None:
        members = s.topology.segments[segment_id].nodes
        checks = [
            Sign("check", f"{c.agent_id}/{c.check_id}")
            for n in members
            for item in s.topology.items_on(n)
            for c in s.topology.items[item].checks
        ]
        agents = [Sign("agent", a) for n in members if (a := s.agent_of(n))]
        cached = s.segment_signs[segment_id] = (Sign("segment", segment_id), *checks, *agents)
    return cached


def segment_verdict(s: Situation, segment_id: str, k: int) -> Verdict | None:
    """Every node of the segment unreachable from outside (two at least: one node alone
    cannot tell its uplink from itself)."""
    nodes = s.independent_nodes(segment_id)
    if len(nodes) < 2 or not all(s.down_near(n, k) for n in nodes):
        return None
    root = Root(RootScope.SEGMENT, segment_id)
    members = s.topology.segments[segment_id].nodes
    agents = [a for n in members if (a := s.agent_of(n))]
    alive = [a for a in agents if s.present(a, k)]
    signs = _segment_signs(s, segment_id)
    if alive:
        return Verdict(Cause.NETWORK, root, Confidence.HIGH, signs)
    return Verdict(
        Cause.UNKNOWN,
        root,
        Confidence.LOW,
        signs,
        (
            f"results of an agent inside {segment_id} for this time: the nodes may be cut off "
            "(their spools arrive once the uplink is back) or down",
        ),
    )
