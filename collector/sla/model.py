"""The SLA engine's domain: what goes in (service items, check results, maintenance,
tickets, overrides) and what comes out (a service item's month).

Times are integer nanoseconds since the Unix epoch (UTC), as everywhere in the
store; intervals are half-open ``[start_ns, end_ns)``. Money is ``Decimal``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

SECOND = 10**9
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


class Cause(StrEnum):
    """What an outage is attributed to (design notes' vocabulary)."""

    NETWORK = "network"  # provider network, inside the border
    UPSTREAM = "upstream"  # beyond the egress hop
    HOST = "host"  # hardware, hypervisor, node OS as provider-run
    SERVICE = "service"  # the provider-run service software
    CUSTOMER = "customer"
    DDOS = "ddos"
    # An event beyond anyone's control (Sonar, Websoft9 exclude it); only an operator's
    # override or an import says so: no measurement can.
    FORCE_MAJEURE = "force_majeure"
    MAINTENANCE = "maintenance"
    UNKNOWN = "unknown"


class MaintenanceKind(StrEnum):
    """The issue's three kinds: scheduled, emergency, time-critical patch."""

    SCHEDULED = "scheduled"
    EMERGENCY = "emergency"
    # A time-critical patch (Closte: excluded only if it stays within 10 minutes).
    PATCH = "patch"
    # The scheduled kind's first name: code written before the rename keeps working.
    PLANNED = "scheduled"

    @classmethod
    def _missing_(cls, value: object) -> MaintenanceKind | None:
        # Every input (import, CLI, inventory, rows stored before version 5) takes the
        # aliases too; what is stored and printed is always the value above.
        return KIND_ALIASES.get(value) if isinstance(value, str) else None


# Other names of the kinds, accepted wherever a kind is read.
KIND_ALIASES: dict[str, MaintenanceKind] = {
    "planned": MaintenanceKind.SCHEDULED,
    "time-critical-patch": MaintenanceKind.PATCH,
}
KIND_NAMES: tuple[str, ...] = (*(kind.value for kind in MaintenanceKind), *KIND_ALIASES)


def parse_kind(value: object) -> MaintenanceKind:
    """A kind from its name or an alias; ValueError listing them otherwise."""
    if isinstance(value, str):
        try:
            return MaintenanceKind(value)
        except ValueError:
            pass
    text = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise ValueError(f"{text} is not one of {', '.join(KIND_NAMES)}")


class MaintenanceScope(StrEnum):
    """What a maintenance window covers: one service item, every item on a node (and on
    the VMs it hosts), in a segment, at a site, or every item."""

    ITEM = "item"
    NODE = "node"
    SEGMENT = "segment"
    SITE = "site"
    ALL = "all"


class WindowSource(StrEnum):
    """Where a maintenance window (or an override) came from."""

    IMPORT = "import"  # `slawatch-collector import`
    CLI = "cli"  # `slawatch-collector maintenance add`, `override add`
    INVENTORY = "inventory"  # the inventory's `maintenance:` list


@dataclass(frozen=True, slots=True)
class CheckKey:
    agent_id: str
    check_id: str


@dataclass(frozen=True, slots=True)
class ServiceItem:
    """The unit a contract is about, and what decides it."""

    id: str
    policy: str
    monthly_fee: Decimal
    currency: str
    # The checks whose failures make the item unavailable (their union).
    checks: tuple[CheckKey, ...]
    # Sonar: credits are computed from the prior month's invoice.
    prior_invoice: Decimal | None = None
    # Sonar: no credit while past due or in default.
    good_standing: bool = True
    name: str = ""
    # Checks that measure packet loss for the item (Closte: from the instance to one
    # hop past the border router); a loss above the policy's bound is degraded time.
    loss_checks: tuple[CheckKey, ...] = ()


@dataclass(frozen=True, slots=True)
class Sample:
    """One round of one defining check: up or down from ``start_ns``, with the
    check's interval (how long the result may stand for)."""

    check: CheckKey
    start_ns: int
    ok: bool
    interval_ns: int
    # Set when the cause is known for this round (imported, or from attribution).
    cause: Cause | None = None
    # Probes of the round (ICMP echoes ...), for packet loss.
    packets_sent: int = 0
    packets_received: int = 0

    @property
    def loss_ratio(self) -> float | None:
        if self.packets_sent <= 0:
            return None
        return (self.packets_sent - self.packets_received) / self.packets_sent


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """An announced maintenance window and what it covers.

    The scope is ``scope`` with ``scope_id``; left out, it follows ``item_id``, the
    older shorthand: an item's id is scope ``item``, None scope ``all``. After
    construction both are always set and agree: ``item_id`` is the item for scope
    ``item`` and None for every other scope; ``scope_id`` is None only for ``all``.
    """

    item_id: str | None
    start_ns: int
    end_ns: int
    announced_ns: int
    kind: MaintenanceKind = MaintenanceKind.SCHEDULED
    note: str = ""
    scope: MaintenanceScope | None = None
    scope_id: str | None = None
    # The store's id (None until stored), where it came from, and when it was
    # cancelled: a cancelled window stays listed but covers nothing.
    window_id: int | None = None
    source: WindowSource = WindowSource.IMPORT
    cancelled_ns: int | None = None
    created_ns: int | None = None
    created_by: str = ""

    def __post_init__(self) -> None:
        scope = self.scope
        if scope is None:
            scope = MaintenanceScope.ALL if self.item_id is None else MaintenanceScope.ITEM
            object.__setattr__(self, "scope", scope)
            object.__setattr__(self, "scope_id", self.item_id)
        if scope is MaintenanceScope.ALL:
            if self.scope_id is not None or self.item_id is not None:
                raise ValueError("a window of scope all names no item or scope id")
        elif not self.scope_id:
            raise ValueError(f"a window of scope {scope} needs a scope id")
        elif scope is MaintenanceScope.ITEM:
            if self.item_id not in (None, self.scope_id):
                raise ValueError(f"item {self.item_id!r} is not scope id {self.scope_id!r}")
            object.__setattr__(self, "item_id", self.scope_id)
        elif self.item_id is not None:
            raise ValueError(f"a window of scope {scope} has no item id")

    @property
    def active(self) -> bool:
        return self.cancelled_ns is None


@dataclass(frozen=True, slots=True)
class ItemPlace:
    """Where a service item runs, for resolving maintenance scopes to items.

    ``nodes``: the node the item runs on and, for a VM, the hypervisor it runs on
    (its ``parent``): a node window covers both. ``segment`` and ``site``: where the
    physical node sits (for a VM, its hypervisor's segment and site).
    """

    item_id: str
    nodes: tuple[str, ...] = ()
    segment: str | None = None
    site: str | None = None

    def covered_by(self, window: MaintenanceWindow) -> bool:
        """Whether the window's scope takes in this item (cancelled or not)."""
        match window.scope:
            case MaintenanceScope.ALL:
                return True
            case MaintenanceScope.ITEM:
                return window.scope_id == self.item_id
            case MaintenanceScope.NODE:
                return window.scope_id in self.nodes
            case MaintenanceScope.SEGMENT:
                return self.segment is not None and window.scope_id == self.segment
            case MaintenanceScope.SITE:
                return self.site is not None and window.scope_id == self.site
        return False


@dataclass(frozen=True, slots=True)
class Ticket:
    """A support ticket about an outage: Closte counts credited time from it."""

    item_id: str
    opened_ns: int
    reference: str = ""
    credit_requested: bool = False


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's verdict on a span: its cause, and why."""

    item_id: str
    start_ns: int
    end_ns: int
    cause: Cause
    reason: str


@dataclass(frozen=True, slots=True)
class Evidence:
    """What an evaluation was given, for one service item."""

    samples: tuple[Sample, ...] = ()
    maintenance: tuple[MaintenanceWindow, ...] = ()
    tickets: tuple[Ticket, ...] = ()
    overrides: tuple[Override, ...] = ()


# -- results -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outage:
    """A maximal span the item was down, with one cause."""

    start_ns: int
    end_ns: int
    cause: Cause
    # Counted toward availability, and if not, the policy rule that excluded it.
    counted: bool
    rule: str
    # The part that earns a credit (0 if none), and why (or why not).
    credited_ns: int
    credit_rule: str
    # Where the cause came from: "observation", "override: <reason>", "maintenance" ...
    cause_source: str = "observation"
    # A credit for it must be claimed by then (None: no deadline, or no credit).
    claim_by_ns: int | None = None

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass(frozen=True, slots=True)
class Event:
    """Touching outages, whole (not cut at the month's edges): one incident. Per-incident
    rules (credit minimums, one credit per event, hours per outage, the ticket, the
    claim deadline, hardware replacement) are judged on it; it belongs to the month
    it starts in."""

    start_ns: int
    end_ns: int
    # Time that earns a credit, whole, and the host (hardware) part of the event.
    credited_ns: int
    host_ns: int
    claim_by_ns: int | None = None


@dataclass(frozen=True, slots=True)
class CauseTotals:
    counted_ns: int = 0
    excluded_ns: int = 0
    # The rules that excluded time of this cause.
    rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Credit:
    amount: Decimal
    currency: str
    formula: str
    # The figures that went into the formula, by name.
    figures: dict[str, str] = field(default_factory=dict)
    # Why there is none, or why it is capped.
    note: str = ""
    # The spans the amount was computed from: (start, end, credited ns), for the claim.
    basis: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ItemMonth:
    """A service item's month under its policy."""

    item: ServiceItem
    policy: str
    month: str  # YYYY-MM
    timezone: str
    period_start_ns: int
    period_end_ns: int
    # Scheduled time = the period minus excluded downtime (and minus unknown time,
    # when the policy leaves it out).
    scheduled_ns: int
    # Downtime the policy excludes (causes, accepted maintenance).
    excluded_ns: int
    counted_down_ns: int
    unknown_ns: int
    availability: float
    target: float
    met: bool
    by_cause: dict[Cause, CauseTotals]
    outages: tuple[Outage, ...]
    credit: Credit
    # When a credit must be claimed by (None: the agreement sets no deadline).
    claim_deadline_ns: int | None = None
    # Other commitments the month broke (HaiSoft's 4-hour hardware replacement).
    findings: tuple[str, ...] = ()
    # Excess packet loss (Closte): its own objective, not part of availability.
    degraded_ns: int = 0
    degraded: tuple[tuple[int, int], ...] = ()
