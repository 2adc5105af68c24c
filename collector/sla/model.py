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
    PLANNED = "planned"
    EMERGENCY = "emergency"
    # A time-critical patch (Closte: excluded only if it stays within 10 minutes).
    PATCH = "patch"


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
    item_id: str | None  # None: every item
    start_ns: int
    end_ns: int
    announced_ns: int
    kind: MaintenanceKind = MaintenanceKind.PLANNED
    note: str = ""


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
