"""SLA policies: a contract as data (docs/policies.md).

A policy says how a service item's month is judged: the target, the time
zone of its months, how check results become downtime, which causes count
toward availability and which earn a credit, how maintenance is treated, and
how a credit is computed. One built-in policy per agreement ships in
``collector/sla/policies/``; users add their own files with the same format.

Policies are validated by hand like the inventory: every problem is named by
its field (``causes.network.credit_min: ...``) and reported at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from collector.errors import PolicyError
from collector.fields import ValueFields
from collector.sla.model import Cause

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
MAX_POLICY_BYTES = 1 << 20


class DowntimeMode:
    # Each result holds until the next result of its check, for at most
    # ``hold_intervals`` check intervals; beyond that the time is unknown.
    HOLD = "hold"
    # Sonoran: a run of at least N consecutive failed tests is downtime from
    # the first to the last failed test; isolated failures are not.
    CONSECUTIVE = "consecutive"


class CreditKind:
    NONE = "none"
    # credited time / (period_days x 24 h) x monthly fee (Sonoran)
    PROPORTIONAL = "proportional"
    # prior invoice / minutes in the month x downtime minutes, below target (Sonar)
    PER_MINUTE_OF_PRIOR_INVOICE = "per_minute_of_prior_invoice"
    # monthly fee / 30 per full hour of each outage over min_outage, capped (HaiSoft)
    DAY_PER_FULL_HOUR = "day_per_full_hour"
    # a share of the fee per counted outage (missed service standard), capped (Websoft9)
    PERCENT_PER_OUTAGE = "percent_per_outage"
    # a share of the fee by the month's availability, from a table (Closte)
    TABLE = "table"


CREDIT_KINDS = (
    CreditKind.NONE, CreditKind.PROPORTIONAL, CreditKind.PER_MINUTE_OF_PRIOR_INVOICE,
    CreditKind.DAY_PER_FULL_HOUR, CreditKind.PERCENT_PER_OUTAGE, CreditKind.TABLE,
)  # fmt: skip
UNKNOWN_HANDLING = ("exclude", "down", "up")


@dataclass(frozen=True, slots=True)
class DowntimeRule:
    mode: str = DowntimeMode.HOLD
    hold_intervals: float = 1.0
    min_consecutive_failures: int = 2
    # Outages shorter than this are not recorded (Sonoran: 5 minutes).
    min_outage_ns: int = 0


@dataclass(frozen=True, slots=True)
class CauseRule:
    """Whether downtime of one cause counts toward availability, and whether it
    earns a credit (two separate questions: Sonoran excludes a network outage
    from uptime yet credits it when it lasts over 10 minutes)."""

    counts: bool = True
    why: str = ""
    credit: bool = True
    # Only outages of this cause longer than this earn a credit.
    credit_min_ns: int = 0
    credit_why: str = ""


@dataclass(frozen=True, slots=True)
class Blackout:
    """Local hours in which planned maintenance is not allowed (Sonar: Mon-Fri 07-19)."""

    weekdays: frozenset[int]  # 0 = Monday
    start_minute: int
    end_minute: int


@dataclass(frozen=True, slots=True)
class MaintenanceRule:
    # Maintenance downtime excluded per month at most (Sonoran: 2 h); None: no cap.
    monthly_allowance_ns: int | None = None
    # Planned maintenance must be announced this long ahead, or it counts.
    notice_ns: int = 0
    blackout: Blackout | None = None
    emergency_excluded: bool = False
    # A patch window is excluded only if the downtime in it stays within this
    # (Closte: 10 minutes); None: patches are treated as planned maintenance.
    patch_max_ns: int | None = None
    why: str = ""


@dataclass(frozen=True, slots=True)
class CreditRule:
    kind: str = CreditKind.NONE
    period_days: int = 30
    min_outage_ns: int = 0
    percent_per_outage: Decimal = Decimal(0)
    cap_ratio: Decimal | None = None
    # Credit only when the month misses its target (Sonar).
    only_below_target: bool = False
    requires_good_standing: bool = False
    # (availability below, share of the fee), most severe last (Closte).
    table: tuple[tuple[float, Decimal], ...] = ()
    # Credited time starts when the customer's ticket was opened (Closte).
    from_ticket: bool = False
    # A claim must be made within this of the incident (Sonoran: 72 h).
    claim_window_ns: int | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    title: str
    agreement: str
    timezone: str
    target: float
    downtime: DowntimeRule
    unknown: str
    causes: dict[Cause, CauseRule]
    maintenance: MaintenanceRule
    credit: CreditRule
    # HaiSoft: host (hardware) outages longer than this broke the replacement commitment.
    hardware_replacement_ns: int | None = None
    # Closte: rounds of the item's loss checks losing more than this share of their
    # probes are degraded time (Excess Packet Loss); None: no such objective.
    excess_loss_above: float | None = None
    source: str = field(default="", compare=False)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def cause_rule(self, cause: Cause) -> CauseRule:
        return self.causes.get(cause, CauseRule())


_TOP = frozenset({"name", "title", "agreement", "timezone", "target", "downtime", "unknown",
                  "causes", "maintenance", "credit", "hardware_replacement",
                  "excess_loss_above"})  # fmt: skip


def policy_from_mapping(data: object, source: str) -> Policy:
    problems: list[str] = []
    f = ValueFields(data, "", _TOP, problems)
    policy = Policy(
        name=f.text("name", pattern=NAME_PATTERN),
        title=f.optional_text("title", max_length=200) or "",
        agreement=f.optional_text("agreement", max_length=500) or "",
        timezone=_read_zone(f),
        target=f.number("target", 0.999, 0.0, 1.0),
        downtime=_read_downtime(f.raw("downtime"), problems),
        unknown=f.choice("unknown", "exclude", UNKNOWN_HANDLING),
        causes=_read_causes(f.raw("causes"), problems),
        maintenance=_read_maintenance(f.raw("maintenance"), problems),
        credit=_read_credit(f.raw("credit"), problems),
        hardware_replacement_ns=f.duration_ns("hardware_replacement", None),
        excess_loss_above=(
            f.number("excess_loss_above", 0.01, 0.0, 1.0)
            if f.raw("excess_loss_above") is not None
            else None
        ),
        source=source,
    )
    if problems:
        raise PolicyError(source, problems)
    return policy


def _read_zone(f: ValueFields) -> str:
    name = f.optional_text("timezone", max_length=64) or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        f.problem("timezone", f"{name!r} is not an IANA time zone (e.g. UTC, America/New_York)")
        return "UTC"
    return name


def _read_downtime(data: object, problems: list[str]) -> DowntimeRule:
    f = ValueFields(data, "downtime", frozenset({"mode", "hold_intervals",
                    "min_consecutive_failures", "min_outage"}), problems)  # fmt: skip
    return DowntimeRule(
        mode=f.choice("mode", DowntimeMode.HOLD, (DowntimeMode.HOLD, DowntimeMode.CONSECUTIVE)),
        hold_intervals=f.number("hold_intervals", 1.0, 0.1, 100.0),
        min_consecutive_failures=f.integer("min_consecutive_failures", 2, 1, 1000),
        min_outage_ns=f.duration_ns("min_outage", 0) or 0,
    )


def _read_causes(data: object, problems: list[str]) -> dict[Cause, CauseRule]:
    f = ValueFields(data, "causes", frozenset(c.value for c in Cause), problems)
    rules: dict[Cause, CauseRule] = {}
    for cause in Cause:
        raw = f.raw(cause.value)
        if raw is None:
            continue
        c = ValueFields(raw, f.at(cause.value), frozenset({"counts", "why", "credit",
                        "credit_min", "credit_why"}), problems)  # fmt: skip
        rules[cause] = CauseRule(
            counts=c.flag("counts", True),
            why=c.optional_text("why", max_length=500) or "",
            credit=c.flag("credit", True),
            credit_min_ns=c.duration_ns("credit_min", 0) or 0,
            credit_why=c.optional_text("credit_why", max_length=500) or "",
        )
    return rules


def _read_maintenance(data: object, problems: list[str]) -> MaintenanceRule:
    f = ValueFields(data, "maintenance", frozenset({"monthly_allowance", "notice", "blackout",
                    "emergency_excluded", "patch_max", "why"}), problems)  # fmt: skip
    return MaintenanceRule(
        monthly_allowance_ns=f.duration_ns("monthly_allowance", None),
        notice_ns=f.duration_ns("notice", 0) or 0,
        blackout=_read_blackout(f.raw("blackout"), problems) if f.raw("blackout") else None,
        emergency_excluded=f.flag("emergency_excluded", False),
        patch_max_ns=f.duration_ns("patch_max", None),
        why=f.optional_text("why", max_length=500) or "",
    )


def _read_blackout(data: object, problems: list[str]) -> Blackout:
    f = ValueFields(data, "maintenance.blackout", frozenset({"weekdays", "from", "to"}), problems)
    days: set[int] = set()
    for path, day in f.items("weekdays", 7):
        if day not in WEEKDAYS:
            problems.append(f"{path}: {day!r} is not one of {', '.join(WEEKDAYS)}")
        else:
            days.add(WEEKDAYS.index(str(day)))
    start, end = _clock(f, "from"), _clock(f, "to")
    if start >= end:
        f.problem("to", "must be after from")
    return Blackout(frozenset(days), start, end)


def _clock(f: ValueFields, key: str) -> int:
    text = f.text(key)
    match = _CLOCK.match(text)
    if text and not match:
        f.problem(key, f"{text!r} is not HH:MM")
    return int(match[1]) * 60 + int(match[2]) if match else 0


def _read_credit(data: object, problems: list[str]) -> CreditRule:
    f = ValueFields(data, "credit", frozenset({"kind", "period_days", "min_outage",
                    "percent_per_outage", "cap", "only_below_target", "requires_good_standing",
                    "table", "from_ticket", "claim_window", "note"}), problems)  # fmt: skip
    return CreditRule(
        kind=f.choice("kind", CreditKind.NONE, CREDIT_KINDS),
        period_days=f.integer("period_days", 30, 1, 31),
        min_outage_ns=f.duration_ns("min_outage", 0) or 0,
        percent_per_outage=_share(f, "percent_per_outage") or Decimal(0),
        cap_ratio=_share(f, "cap"),
        only_below_target=f.flag("only_below_target", False),
        requires_good_standing=f.flag("requires_good_standing", False),
        table=_read_table(f),
        from_ticket=f.flag("from_ticket", False),
        claim_window_ns=f.duration_ns("claim_window", None),
        note=f.optional_text("note", max_length=500) or "",
    )


def _share(f: ValueFields, key: str) -> Decimal | None:
    """A share of the monthly fee: 0.05 or "5%"."""
    value = f.raw(key)
    if value is None:
        return None
    try:
        text = str(value).strip()
        share = Decimal(text[:-1]) / 100 if text.endswith("%") else Decimal(text)
    except InvalidOperation:
        f.problem(key, f"{value!r} is not a share (0.05 or 5%)")
        return None
    if not 0 <= share <= 1 or isinstance(value, bool):
        f.problem(key, f"{value!r} is outside 0 .. 100%")
        return None
    return share


def _read_table(f: ValueFields) -> tuple[tuple[float, Decimal], ...]:
    rows: list[tuple[float, Decimal]] = []
    for path, item in f.items("table", 20):
        row = ValueFields(item, path, frozenset({"below", "credit"}), f.problems)
        below = row.number("below", 1.0, 0.0, 1.0)
        if row.raw("credit") is None:
            row.problem("credit", "required")
        rows.append((below, _share(row, "credit") or Decimal(0)))
    if [b for b, _ in rows] != sorted((b for b, _ in rows), reverse=True):
        f.problem("table", "rows must go from the highest availability to the lowest")
    return tuple(rows)


# -- finding policies --------------------------------------------------------


def load_policy_file(path: Path) -> Policy:
    try:
        if path.stat().st_size > MAX_POLICY_BYTES:
            raise PolicyError(str(path), [f"larger than {MAX_POLICY_BYTES} bytes"])
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(str(path), [f"cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise PolicyError(str(path), [f"not UTF-8 text (byte {exc.start})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(str(path), [f"not valid YAML: {exc}"]) from None
    return policy_from_mapping(data, str(path))


def builtin_policies() -> dict[str, Policy]:
    """The policies that ship with the collector, one per agreement, by name."""
    folder = resources.files("collector.sla") / "policies"
    policies: dict[str, Policy] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            policy = policy_from_mapping(
                yaml.safe_load(entry.read_text()), f"built-in {entry.name}"
            )
            policies[policy.name] = policy
    return policies


def load_policies(folders: tuple[Path, ...] = ()) -> dict[str, Policy]:
    """Built-in policies, then the users' (``*.yaml`` in ``folders``); a user policy
    with a built-in's name replaces it."""
    policies = builtin_policies()
    for folder in folders:
        for path in sorted(folder.glob("*.yaml")):
            policy = load_policy_file(path)
            policies[policy.name] = policy
    return policies
