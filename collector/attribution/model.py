"""Attribution's domain: the topology it reasons over, the signals it reads, and the
incidents it produces.

Times are integer nanoseconds since the Unix epoch (UTC); intervals are half-open
``[start_ns, end_ns)``. Causes are the SLA engine's ``Cause`` (design notes'
vocabulary): attribution says what failed, the policy says who pays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from collector.sla.model import Cause

__all__ = [
    "AffectedItem",
    "AttributionResult",
    "CheckRef",
    "Confidence",
    "EvidenceLine",
    "Incident",
    "IncidentKind",
    "ItemState",
    "NodeRole",
    "Root",
    "RootScope",
    "TopoItem",
    "TopoNode",
    "TopoSegment",
    "Topology",
    "Vantage",
]


class NodeRole(StrEnum):
    HYPERVISOR = "hypervisor"
    SERVER = "server"
    VM = "vm"
    ROUTER = "router"
    # An agent outside the provider's network: it sees what customers see.
    OUTSIDE = "outside"


class Vantage(StrEnum):
    """Where a check runs from, relative to the service item's node."""

    LOCAL = "local"  # the node itself, or the hypervisor a VM runs on
    PEER = "peer"  # another node in the same segment
    SITE = "site"  # a node in another segment of the provider's network
    OUTSIDE = "outside"  # an agent outside the provider's network


@dataclass(frozen=True, slots=True)
class TopoNode:
    id: str
    role: NodeRole
    site: str
    segment: str
    agent: str | None = None
    # The hypervisor a VM runs on.
    parent: str | None = None
    # Processes on this node that the customer runs (a missing one is the customer's).
    customer_processes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TopoSegment:
    id: str
    site: str
    nodes: tuple[str, ...]
    # The border router and the egress hop (one past it), as node ids, when known.
    border: str | None = None
    egress: str | None = None


@dataclass(frozen=True, slots=True)
class CheckRef:
    """One check of a service item, and where it runs from."""

    agent_id: str
    check_id: str
    vantage: Vantage


@dataclass(frozen=True, slots=True)
class TopoItem:
    """A service item: the node it lives on, its owner, and its defining checks."""

    id: str
    node: str
    owner: str
    checks: tuple[CheckRef, ...]


@dataclass(frozen=True, slots=True)
class Topology:
    nodes: dict[str, TopoNode]
    segments: dict[str, TopoSegment]
    items: dict[str, TopoItem]
    # agent id -> node id
    agent_nodes: dict[str, str] = field(default_factory=dict)
    # Indexes, built once: the rules ask these for every down item and slot.
    _items_by_node: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _children: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_node: dict[str, list[str]] = {}
        for item in self.items.values():
            by_node.setdefault(item.node, []).append(item.id)
        children: dict[str, list[str]] = {}
        for node in self.nodes.values():
            if node.parent is not None:
                children.setdefault(node.parent, []).append(node.id)
        object.__setattr__(self, "_items_by_node", {k: tuple(v) for k, v in by_node.items()})
        object.__setattr__(self, "_children", {k: tuple(v) for k, v in children.items()})

    def children(self, node_id: str) -> tuple[str, ...]:
        """The VMs running on hypervisor ``node_id``."""
        return self._children.get(node_id, ())

    def items_on(self, node_id: str) -> tuple[str, ...]:
        return self._items_by_node.get(node_id, ())


# -- results ------------------------------------------------------------------


class IncidentKind(StrEnum):
    OUTAGE = "outage"  # service items unavailable
    DEGRADED = "degraded"  # available, but Excess Packet Loss


class RootScope(StrEnum):
    """What an incident's root cause is a fault of."""

    ITEM = "item"  # the service item itself (its software, or the path to it)
    NODE = "node"  # a node: its host, or everything on it
    SEGMENT = "segment"  # a segment's uplink: every node in it
    PATH = "path"  # a network path: border -> egress hop, or beyond the egress hop


@dataclass(frozen=True, slots=True)
class Root:
    scope: RootScope
    id: str


class Confidence(StrEnum):
    HIGH = "high"  # every signal the rule uses was present and agreed
    MEDIUM = "medium"  # the rule's main signals agreed, some others were missing
    LOW = "low"  # a verdict from few signals; read the evidence


@dataclass(frozen=True, slots=True)
class EvidenceLine:
    """One signal behind a verdict: what it is, and what it showed."""

    signal: str  # e.g. "check", "agent", "host finding", "egress loss", "peers"
    text: str
    agent_id: str = ""
    check_id: str = ""
    vantage: str = ""
    # Observations behind this line, and when the first and last of them started.
    observations: int = 0
    first_ns: int = 0
    last_ns: int = 0


@dataclass(frozen=True, slots=True)
class AffectedItem:
    """A service item down because of the incident's root (a VM on a failed hypervisor,
    a node in a cut segment): affected, not a separate fault."""

    item_id: str
    node: str
    via: str  # the root's id


@dataclass(frozen=True, slots=True)
class Incident:
    kind: IncidentKind
    root: Root
    cause: Cause
    start_ns: int
    end_ns: int
    # The service items whose own fault the root is (for a node or item root).
    items: tuple[str, ...]
    affected: tuple[AffectedItem, ...]
    confidence: Confidence
    evidence: tuple[EvidenceLine, ...]
    # What would have decided it, when the verdict is ``unknown`` (or less sure).
    missing: tuple[str, ...] = ()
    # Inside a maintenance window: the cause the measurements give, and the window.
    observed_cause: Cause | None = None
    # True while the incident's last slot is the newest the data covers.
    open: bool = False

    @property
    def all_items(self) -> tuple[str, ...]:
        return tuple(sorted({*self.items, *(a.item_id for a in self.affected)}))


class ItemState(StrEnum):
    UP = "up"
    DOWN = "down"
    DEGRADED = "degraded"  # up, with Excess Packet Loss
    UNKNOWN = "unknown"  # no vantage has data


@dataclass(frozen=True, slots=True)
class AttributionResult:
    """One run of attribution over ``[start_ns, end_ns)``."""

    start_ns: int
    end_ns: int
    incidents: tuple[Incident, ...]
    # Each service item's state at the end of the range.
    states: dict[str, ItemState]
