"""Instants as the store keeps them (integer nanoseconds since the Unix epoch, UTC),
read from and written as RFC 3339 text. Exact: never through a float.

Shared by everything that reads a time from a person: the import format, the
inventory's maintenance windows, and the maintenance and override commands.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

__all__ = ["MAX_TIME_NS", "format_time", "parse_time_ns"]

SECOND = 10**9
MAX_TIME_NS = 2**63 - 1  # SQLite's INTEGER: the year 2262

# RFC 3339 date-time (section 5.6) with nanoseconds at most; "T" may be "t" or a space.
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d\d):(\d\d))\Z"
)
_EPOCH = datetime(1970, 1, 1)


def _short(value: object) -> str:
    """A value for a message, cut so that a huge one does not flood the output."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_time_ns(value: object) -> int:
    """Nanoseconds since the epoch from an RFC 3339 timestamp with an offset
    (``2026-03-01T10:00:00Z``, ``2026-03-01T05:00:00.25-05:00``) or integer nanoseconds.

    Exact: fractions are kept to the nanosecond, never through a float. A datetime
    (what YAML makes of an unquoted timestamp) is taken when it has an offset; YAML
    keeps microseconds at most, so quote a time with nanoseconds.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        ns = value
    elif isinstance(value, str):
        ns = _rfc3339_ns(value)
    elif isinstance(value, date):
        ns = _yaml_ns(value)
    else:
        raise ValueError(
            f"must be an RFC 3339 timestamp or integer nanoseconds, not {_short(value)}"
        )
    if not 0 <= ns <= MAX_TIME_NS:
        raise ValueError(f"{_short(value)} is outside 1970-01-01 .. 2262-04-11")
    return ns


def _rfc3339_ns(text: str) -> int:
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(
            f"{_short(text)} is not an RFC 3339 timestamp with an offset "
            "(e.g. 2026-03-01T10:00:00Z or 2026-03-01T12:00:00+02:00)"
        )
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    try:  # datetime checks the calendar (no 30 February, no leap second 60)
        local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError as exc:
        raise ValueError(f"{_short(text)}: {exc}") from None
    offset_s = 0
    if sign is not None:
        if int(off_h) > 23 or int(off_m) > 59:
            raise ValueError(f"{_short(text)}: offset {sign}{off_h}:{off_m} is not a time offset")
        offset_s = (int(off_h) * 3600 + int(off_m) * 60) * (1 if sign == "+" else -1)
    # Integer division of timedeltas is exact; local time minus its offset is UTC.
    seconds = (local - _EPOCH) // timedelta(seconds=1) - offset_s
    return seconds * SECOND + int((fraction or "0").ljust(9, "0"))


def _yaml_ns(value: date) -> int:
    if not isinstance(value, datetime):
        raise ValueError(f"{value.isoformat()} is a date; give a time with an offset "
                         f"(e.g. {value.isoformat()}T00:00:00Z)")  # fmt: skip
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{value.isoformat()} has no offset; write Z or +HH:MM after it, else it would "
            "mean a different instant on every machine"
        )
    since = value - datetime(1970, 1, 1, tzinfo=UTC)
    return since // timedelta(microseconds=1) * 1000


def format_time(ns: int) -> str:
    """RFC 3339 in UTC (``2026-03-01T10:00:00Z``), with the fraction when there is one:
    ``parse_time_ns`` reads it back to the same nanosecond."""
    seconds, fraction = divmod(ns, SECOND)
    text = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"
