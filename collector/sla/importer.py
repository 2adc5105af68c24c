"""``slawatch-collector import FILE``: SLA inputs and history from elsewhere, as JSON Lines.

The format is docs/import-format.md: one JSON object per line, its ``type`` one
of service_item, observation, maintenance, ticket, override. Every line is
validated in full first, and references between lines (a ticket's item) are
resolved against the file and the store; any problem imports nothing, and the
user sees all of them at once as ``line N: field: message``. A good file is
written in one savepoint of the store's writer, so a failure leaves nothing
half-written and a running collector's ingest just waits its turn.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from collector.errors import InputFileError, StoreError
from collector.ingest.validate import ID_PATTERN, MAX_DURATION_NS, MAX_TARGET
from collector.sla.model import (
    DAY,
    SECOND,
    Cause,
    CheckKey,
    MaintenanceKind,
    MaintenanceScope,
    MaintenanceWindow,
    Override,
    ServiceItem,
    Ticket,
    parse_kind,
)
from collector.store.sla_tables import (
    ImportedObservation,
    ImportRecords,
    TableCount,
    service_item_ids,
)
from collector.store.sqlite import KIND_NAMES, OUTCOME_NAMES, Store, connect
from collector.times import parse_time_ns

__all__ = ["format_counts", "import_file", "parse_records", "parse_time_ns", "read_import_file"]

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)
Record = ServiceItem | ImportedObservation | MaintenanceWindow | Ticket | Override

MAX_TEXT = 255
MAX_NOTE = 4096  # notes and reasons: a sentence or a paragraph, not a document
MAX_CHECKS = 10_000
MAX_INTERVAL_NS = DAY  # the agent's own bound on a check's interval

_CURRENCY = re.compile(r"[A-Z]{3}\Z")
_OUTCOMES = tuple(name for name in OUTCOME_NAMES.values() if name != "unspecified")
_KINDS = tuple(name for name in KIND_NAMES.values() if name != "unspecified")


# -- values: each parser returns the value or raises ValueError saying what is wrong --


def _short(value: object) -> str:
    """A value for a message, cut so that a huge one does not flood the output."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(max_length: int = MAX_TEXT) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError(f"must be a non-empty string, not {_short(value)}")
        if len(value) > max_length:
            raise ValueError(f"longer than {max_length} characters")
        return value

    return parse


def _optional_text(max_length: int) -> Callable[[object], str]:
    """A string that may be empty (a note, a reference)."""

    def parse(value: object) -> str:
        return "" if value == "" else _text(max_length)(value)

    return parse


def _identifier(value: object) -> str:
    text = _text()(value)
    if not ID_PATTERN.match(text):
        raise ValueError(f"{_short(text)} must match {ID_PATTERN.pattern}")
    return text


def _money(value: object) -> Decimal:
    """A non-negative decimal, exact: JSON numbers arrive as Decimal, never as floats."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ValueError(f"must be a decimal number or a string holding one, not {_short(value)}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{_short(value)} is not a decimal number") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{_short(value)} must be a finite amount >= 0")
    return amount


def _currency(value: object) -> str:
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise ValueError(f"{_short(value)} is not a currency code of 3 capital letters (USD)")
    return value


def _count(value: object) -> int:
    """Probes in a round: a whole number from 0 to 1,000,000."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
        raise ValueError(f"must be a whole number from 0 to 1000000, not {_short(value)}")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {_short(value)}")
    return value


def _seconds_ns(low: int, high: int, low_open: bool) -> Callable[[object], int]:
    """Seconds (a JSON number) as nanoseconds within [low, high] ns, or (low, high]."""

    def parse(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise ValueError(f"must be a number of seconds, not {_short(value)}")
        ns = int((Decimal(value) * SECOND).to_integral_value())
        if ns < low or (low_open and ns == low) or ns > high:
            bracket = "(" if low_open else "["
            raise ValueError(f"{value} is outside {bracket}{low // SECOND}, {high // SECOND}] s")
        return ns

    return parse


def _choice(names: tuple[str, ...]) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if value not in names:
            raise ValueError(f"{_short(value)} is not one of {', '.join(names)}")
        return str(value)

    return parse


def _member(enum: type[E]) -> Callable[[object], E]:
    names = tuple(member.value for member in enum)

    def parse(value: object) -> E:
        return enum(_choice(names)(value))

    return parse


# -- one line -------------------------------------------------------------------


Problems = list[tuple[int, str]]  # (line number, message): sorted by line at the end


def _note(problems: Problems, number: int, message: str) -> None:
    problems.append((number, f"line {number}: {message}"))


class _Line:
    """One line's object (or an object inside it, under ``prefix``). Each reader notes
    a problem and returns a fallback, so that reading goes on and the user sees every
    problem of the file at once."""

    def __init__(
        self,
        number: int,
        data: Mapping[str, object],
        known: Collection[str],
        problems: Problems,
        prefix: str = "",
    ) -> None:
        self.number = number
        self.prefix = prefix
        self._data = data
        self._problems = problems
        self._first_problem = len(problems)
        for key in data:
            if key not in known:
                self.problem(key, f"unknown field (known: {', '.join(sorted(known))})")

    def nested(self, data: Mapping[str, object], known: Collection[str], prefix: str) -> _Line:
        """An object inside this line; its problems name it by ``prefix``."""
        return _Line(self.number, data, known, self._problems, self.prefix + prefix)

    def problem(self, key: str, message: str) -> None:
        _note(self._problems, self.number, f"{self.prefix}{key}: {message}")

    @property
    def valid(self) -> bool:
        """No problem was found on this line (so far)."""
        return len(self._problems) == self._first_problem

    def has(self, key: str) -> bool:
        # JSON null counts as absent: "item": null is "every item", like no "item".
        return self._data.get(key) is not None

    def raw(self, key: str) -> object:
        return self._data.get(key)

    def required(self, key: str, parse: Callable[[object], T], fallback: T) -> T:
        if not self.has(key):
            self.problem(key, "required")
            return fallback
        return self.optional(key, parse, fallback)

    def optional(self, key: str, parse: Callable[[object], T], default: T) -> T:
        if not self.has(key):
            return default
        try:
            return parse(self._data[key])
        except ValueError as exc:
            self.problem(key, str(exc))
            return default

    def span(self) -> tuple[int, int]:
        """``start`` and ``end``, the end after the start."""
        start = self.required("start", parse_time_ns, -1)
        end = self.required("end", parse_time_ns, -1)
        if 0 <= end <= start:
            self.problem("end", f"{_short(self.raw('end'))} is not after start")
        return start, end


def _service_item(line: _Line) -> ServiceItem:
    return ServiceItem(
        id=line.required("id", _identifier, ""),
        name=line.optional("name", _optional_text(MAX_TEXT), ""),
        # Only its form: the engine knows which policies exist, and says so.
        policy=line.required("policy", _text(), ""),
        monthly_fee=line.required("monthly_fee", _money, Decimal(0)),
        currency=line.required("currency", _currency, ""),
        prior_invoice=line.optional("prior_invoice", _money, None),
        good_standing=line.optional("good_standing", _flag, True),
        checks=_checks(line),
        loss_checks=_checks(line, "loss_checks", required=False),
    )


def _checks(line: _Line, field: str = "checks", required: bool = True) -> tuple[CheckKey, ...]:
    value = line.raw(field)
    if value is None:
        if required:
            line.problem(field, "required")
        return ()
    if not isinstance(value, list) or not 0 < len(value) <= MAX_CHECKS:
        line.problem(field, f"must be a list of 1 to {MAX_CHECKS} {{agent, check}} objects")
        return ()
    checks: dict[CheckKey, int] = {}
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            line.problem(
                f"{field}[{i}]", f"must be an object {{agent, check}}, not {_short(entry)}"
            )
            continue
        inner = line.nested(entry, ("agent", "check"), f"{field}[{i}].")
        key = CheckKey(
            inner.required("agent", _identifier, ""), inner.required("check", _identifier, "")
        )
        if inner.valid and key in checks:
            line.problem(f"{field}[{i}]", f"the same check as {field}[{checks[key]}]")
        checks.setdefault(key, i)
    return tuple(checks)


def _observation(line: _Line) -> ImportedObservation:
    if line.has("ok") == line.has("outcome"):
        line.problem("ok", "give either ok (true or false) or outcome, exactly one")
    outcome = line.optional("outcome", _choice(_OUTCOMES), "ok")
    if line.has("ok"):
        outcome = "ok" if line.optional("ok", _flag, True) else "failed"
    cause = line.optional("cause", _member(Cause), None)
    sent = line.optional("packets_sent", _count, 0)
    received = line.optional("packets_received", _count, 0)
    if received > sent:
        line.problem("packets_received", f"{received} is more than packets_sent ({sent})")
    return ImportedObservation(
        agent_id=line.required("agent", _identifier, ""),
        check_id=line.required("check", _identifier, ""),
        start_ns=line.required("start", parse_time_ns, 0),
        outcome=outcome,
        kind=line.optional("kind", _choice(_KINDS), "http"),
        target=line.optional("target", _optional_text(MAX_TARGET), ""),
        duration_ns=line.optional("duration_s", _seconds_ns(0, MAX_DURATION_NS, False), 0),
        interval_ns=line.optional("interval_s", _seconds_ns(0, MAX_INTERVAL_NS, True), None),
        cause=None if cause is None else cause.value,
        packets_sent=sent,
        packets_received=received,
    )


def _maintenance(line: _Line) -> MaintenanceWindow:
    start, end = line.span()
    scope, scope_id = _window_scope(line)
    return MaintenanceWindow(
        item_id=None,
        start_ns=start,
        end_ns=end,
        announced_ns=line.required("announced", parse_time_ns, 0),
        kind=line.required("kind", parse_kind, MaintenanceKind.SCHEDULED),
        note=line.optional("note", _optional_text(MAX_NOTE), ""),
        scope=scope,
        scope_id=scope_id,
    )


def _window_scope(line: _Line) -> tuple[MaintenanceScope, str | None]:
    """``scope`` and ``scope_id``, or the shorthand ``item`` (left out: every item).
    With a problem, scope ``all``: the line is refused anyway."""
    if not line.has("scope"):
        if line.has("scope_id"):
            line.problem("scope_id", "given without scope")
        item = line.optional("item", _identifier, None)
        return (MaintenanceScope.ALL, None) if not item else (MaintenanceScope.ITEM, item)
    if line.has("item"):
        line.problem("item", "give either item or scope (with scope_id), not both")
    scope = line.optional("scope", _member(MaintenanceScope), None)
    if scope is None:  # noted; whether scope_id fits is moot
        return MaintenanceScope.ALL, None
    if scope is MaintenanceScope.ALL:
        if line.has("scope_id"):
            line.problem("scope_id", "scope all covers every item: give no scope_id")
        return MaintenanceScope.ALL, None
    scope_id = line.required("scope_id", _identifier, "")
    return (scope, scope_id) if scope_id else (MaintenanceScope.ALL, None)


def _ticket(line: _Line) -> Ticket:
    return Ticket(
        item_id=line.required("item", _identifier, ""),
        opened_ns=line.required("opened", parse_time_ns, 0),
        reference=line.optional("reference", _optional_text(MAX_TEXT), ""),
        credit_requested=line.optional("credit_requested", _flag, False),
    )


def _override(line: _Line) -> Override:
    start, end = line.span()
    return Override(
        item_id=line.required("item", _identifier, ""),
        start_ns=start,
        end_ns=end,
        cause=line.required("cause", _member(Cause), Cause.UNKNOWN),
        reason=line.required("reason", _text(MAX_NOTE), ""),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Type:
    fields: frozenset[str]
    parse: Callable[[_Line], Record]


_TYPES: dict[str, _Type] = {
    "service_item": _Type(
        frozenset({"id", "name", "policy", "monthly_fee", "currency", "prior_invoice",
                   "good_standing", "checks", "loss_checks"}),
        _service_item,
    ),
    "observation": _Type(
        frozenset({"agent", "check", "start", "ok", "outcome", "interval_s", "duration_s",
                   "cause", "target", "kind", "packets_sent", "packets_received"}),
        _observation,
    ),
    "maintenance": _Type(
        frozenset({"item", "scope", "scope_id", "start", "end", "announced", "kind", "note"}),
        _maintenance,
    ),
    "ticket": _Type(frozenset({"item", "opened", "reference", "credit_requested"}), _ticket),
    "override": _Type(frozenset({"item", "start", "end", "cause", "reason"}), _override),
}  # fmt: skip


def _json_object(text: str) -> dict[str, object]:
    """The line's object; ValueError for anything else, duplicate keys included
    (``json`` would keep the last one silently)."""

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        result: dict[str, object] = {}
        for key, value in items:
            if key in result:
                raise ValueError(f"the key {key!r} appears twice")
            result[key] = value
        return result

    def constant(name: str) -> object:
        raise ValueError(f"{name} is not a number JSON allows")

    # Decimals for every JSON number with a point: a fee of 12.10 stays exactly that.
    data = json.loads(text, parse_float=Decimal, parse_constant=constant, object_pairs_hook=pairs)
    if not isinstance(data, dict):
        raise ValueError(f"must be a JSON object, not {type(data).__name__}")
    return data


@dataclasses.dataclass(frozen=True, slots=True)
class _Parsed:
    number: int
    # With a problem in some field, the others are still checked against the other
    # lines (a ticket's item), so the user sees every problem in one run.
    record: Record
    valid: bool


def _parse_line(number: int, text: str, problems: Problems) -> _Parsed | None:
    """The line's record, with fallbacks where a field has a problem (noted); None when
    it is not even an object of a known type."""
    try:
        data = _json_object(text)
    except json.JSONDecodeError as exc:  # its own message would say "line 1"
        _note(problems, number, f"not valid JSON: {exc.msg} at column {exc.colno}")
        return None
    except ValueError as exc:
        _note(problems, number, f"not a JSON object: {exc}")
        return None
    except RecursionError:  # a hostile line of [[[[...]]]]
        _note(problems, number, "not a JSON object: nested too deeply")
        return None
    type_name = data.get("type")
    kind = _TYPES.get(type_name) if isinstance(type_name, str) else None
    if kind is None:
        message = "required" if "type" not in data else f"{_short(data['type'])} is not a type"
        _note(problems, number, f"type: {message} (one of {', '.join(_TYPES)})")
        return None
    line = _Line(number, data, kind.fields | {"type"}, problems)
    record = kind.parse(line)
    return _Parsed(number, record, line.valid)


# -- the whole file ------------------------------------------------------------------


def _identity(record: Record) -> tuple[str, str, tuple[object, ...]]:
    """Where a repeat is reported, what makes two records the same, and their key:
    the key a second import replaces by (collector/store/sla_tables.py)."""
    key: tuple[object, ...]
    match record:
        case ServiceItem():
            return "id", "id", ("service_item", record.id)
        case ImportedObservation():
            key = ("observation", record.agent_id, record.check_id, record.start_ns)
            return "start", "agent, check and start", key
        case MaintenanceWindow():
            key = ("maintenance", record.scope, record.scope_id, record.start_ns, record.end_ns)
            return "start", "scope, start and end", key
        case Ticket():
            return "opened", "item and opened", ("ticket", record.item_id, record.opened_ns)
        case Override():
            key = ("override", record.item_id, record.start_ns, record.end_ns)
            return "start", "item, start and end", key


def _check_repeats(parsed: list[_Parsed], problems: Problems) -> None:
    """Two lines with the same key would silently keep one of them: say which."""
    seen: dict[tuple[object, ...], int] = {}
    for line in parsed:
        if not line.valid:  # a fallback in the key would make false repeats
            continue
        field, same, key = _identity(line.record)
        if key in seen:
            _note(problems, line.number, f"{field}: the same {same} as line {seen[key]}")
        seen.setdefault(key, line.number)


def _check_references(parsed: list[_Parsed], stored: Collection[str], problems: Problems) -> None:
    """Items named by maintenance, tickets and overrides exist, in the file or the store.

    An item line with a bad fee still defines its id: one mistake, one problem.
    """
    known = set(stored) | {p.record.id for p in parsed if isinstance(p.record, ServiceItem)}
    for line in parsed:
        item = getattr(line.record, "item_id", None)
        # None: every item (maintenance); "": the item field's own problem is noted.
        if isinstance(line.record, ServiceItem) or not item or item in known:
            continue
        message = f"item: {item!r} is not a service item of this file nor of the store"
        _note(problems, line.number, message)


def parse_records(
    lines: Iterable[str | bytes], source: str = "<input>", stored_items: Collection[str] = ()
) -> ImportRecords:
    """Every record of an import file, validated; InputFileError naming every problem.

    ``stored_items`` are the service item ids already in the store, which lines may
    refer to. Blank lines are skipped; line numbers count them.
    """
    problems: Problems = []
    parsed: list[_Parsed] = []
    for number, raw in enumerate(lines, 1):
        try:
            text = raw.decode() if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            _note(problems, number, f"not UTF-8: {exc.reason}")
            continue
        # The line end is no part of the JSON (and would shift its error's column).
        text = text.rstrip("\r\n")
        text = text.removeprefix("\ufeff") if number == 1 else text  # a BOM from Windows
        if not text.strip():
            continue
        line = _parse_line(number, text, problems)
        if line is not None:
            parsed.append(line)
    _check_repeats(parsed, problems)
    _check_references(parsed, stored_items, problems)
    if problems:
        problems.sort(key=lambda problem: problem[0])  # stable: a line's own order stays
        raise InputFileError(source, [text for _, text in problems])
    return _grouped([line.record for line in parsed])


def _grouped(records: list[Record]) -> ImportRecords:
    def of(cls: type[T]) -> tuple[T, ...]:
        return tuple(r for r in records if isinstance(r, cls))

    return ImportRecords(
        items=of(ServiceItem),
        observations=of(ImportedObservation),
        maintenance=of(MaintenanceWindow),
        tickets=of(Ticket),
        overrides=of(Override),
    )


def read_import_file(path: Path, stored_items: Collection[str] = ()) -> ImportRecords:
    """``parse_records`` of a file."""
    try:
        with path.open("rb") as file:
            return parse_records(file, str(path), stored_items)
    except OSError as exc:
        raise InputFileError(str(path), [f"cannot read: {exc.strerror or exc}"]) from None


def _stored_item_ids(db_path: Path) -> set[str]:
    if not db_path.exists():
        return set()  # the import creates the store
    try:
        conn = connect(db_path, readonly=True)
        try:
            return service_item_ids(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read store {db_path}: {exc}") from None


def import_file(path: Path, db_path: Path, now_ns: int | None = None) -> dict[str, TableCount]:
    """Validate ``path`` and store it in ``db_path`` (created or upgraded as needed),
    all in one transaction; per record type, how many the file gave and how many
    were new to the store (the rest replaced the same records)."""
    records = read_import_file(path, _stored_item_ids(db_path))
    store = Store(db_path)
    try:
        now = time.time_ns() if now_ns is None else now_ns
        return asyncio.run(store.import_records(records, now))
    finally:
        store.close()


def format_counts(counts: Mapping[str, TableCount]) -> str:
    """The import's summary: a line per record type."""
    width = max(len(name) for name in counts)
    return "\n".join(
        f"  {name:<{width}}  {count.given:>8}  ({count.new} new)" for name, count in counts.items()
    )
