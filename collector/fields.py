"""Reading one mapping of a YAML file by hand, naming every problem by its field path.

The collector's counterpart of the agent's field reader (the two share no
code, only the wire contract), cut down to what the inventory reads: strings,
lists of mappings, and unknown keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping


class Fields:
    """One mapping at ``path``; each reader notes a problem and returns a fallback, so
    that reading goes on and the user sees every problem at once."""

    def __init__(self, data: object, path: str, known: frozenset[str], problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        self._data: Mapping[object, object] = {}
        if isinstance(data, Mapping):
            self._data = data
            for key in data:
                if key not in known:
                    self.problem(str(key), "unknown setting")
        elif data is not None:
            problems.append(f"{path or '(top level)'}: must be a mapping of settings")

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.at(key)}: {message}")

    def raw(self, key: str) -> object:
        return self._data.get(key)

    def text(
        self, key: str, *, pattern: re.Pattern[str] | None = None, max_length: int = 255
    ) -> str:
        """A required string; "" when it is missing or bad."""
        value = self._data.get(key)
        if value is None:
            self.problem(key, "required")
        elif not isinstance(value, str) or not value:
            self.problem(key, f"must be a non-empty string, not {_short(value)}")
        elif len(value) > max_length:
            self.problem(key, f"longer than {max_length} characters")
        elif pattern is not None and not pattern.match(value):
            self.problem(key, f"{_short(value)} must match {pattern.pattern}")
        else:
            return value
        return ""

    def optional_text(
        self, key: str, *, pattern: re.Pattern[str] | None = None, max_length: int = 255
    ) -> str | None:
        if self._data.get(key) is None:
            return None
        return self.text(key, pattern=pattern, max_length=max_length) or None

    def items(self, key: str, max_items: int) -> list[tuple[str, object]]:
        """An optional list, as (field path, item) pairs."""
        value = self._data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(key, "must be a list")
            return []
        if len(value) > max_items:
            self.problem(key, f"{len(value)} entries, at most {max_items}")
            return []
        return [(f"{self.at(key)}[{i}]", item) for i, item in enumerate(value)]


def _short(value: object) -> str:
    """A value for a message, cut so that a huge one does not flood the output."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_duration_ns(value: object) -> int:
    """Nanoseconds from seconds (a number) or "90s", "15m", "2h", "3d"."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
    if isinstance(value, bool):
        raise ValueError(f"{_short(value)} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value[-1:] in units and _is_number(value[:-1]):
        seconds = float(value[:-1]) * units[value[-1]]
    else:
        raise ValueError(f"{_short(value)} is not a duration (seconds, or e.g. 90s, 15m, 2h, 3d)")
    if not 0 <= seconds <= 366 * 86_400:
        raise ValueError(f"{_short(value)} is outside 0 .. 366 days")
    return round(seconds * 1e9)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class ValueFields(Fields):
    """Fields with numbers, flags and durations too (policies, not only the inventory)."""

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self._data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            self.problem(key, f"must be a number, not {_short(value)}")
            return default
        if not low <= value <= high:
            self.problem(key, f"{value} is outside [{low}, {high}]")
            return default
        return float(value)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(key, f"must be a whole number in [{low}, {high}], not {_short(value)}")
            return default
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._data.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, f"must be true or false, not {_short(value)}")
            return default
        return value

    def duration_ns(self, key: str, default: int | None) -> int | None:
        value = self._data.get(key)
        if value is None:
            return default
        try:
            return parse_duration_ns(value)
        except ValueError as exc:
            self.problem(key, str(exc))
            return default

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._data.get(key, default)
        if value not in choices:
            self.problem(key, f"{_short(value)} is not one of {', '.join(choices)}")
            return default
        return str(value)
