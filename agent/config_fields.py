"""Reading one mapping of the YAML config, with every problem named by its field path."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T", int, float)


_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B|B)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}  # fmt: skip
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])?\s*$")
_DURATION_UNITS = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_size(value: object) -> int:
    """Bytes from 1048576, "1MiB", "64 KiB" or "2GB"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a size (bytes, or e.g. 64KiB, 256MiB, 1GB)")
    return int(match[1]) * _SIZE_UNITS[match[2]]


def parse_duration(value: object) -> float:
    """Seconds from 90, 1.5, "90s", "15m", "12h" or "7d"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a duration (seconds, or e.g. 90s, 15m, 12h, 7d)")
    return float(match[1]) * _DURATION_UNITS[match[2]]


class Fields:
    """Reads one mapping of the YAML, noting every problem with its field path.

    Each reader returns the default for a bad value so that reading goes on
    and the user sees all problems at once.
    """

    def __init__(self, data: object, path: str, known: set[str], problems: list[str]) -> None:
        self._path = path
        self._problems = problems
        self._data: Mapping[object, object] = {}
        if isinstance(data, Mapping):
            self._data = data
            for key in data:
                if key not in known:
                    self.problem(str(key), "unknown setting")
        elif data is not None:
            problems.append(f"{path or '(top level)'}: must be a mapping of settings")

    def at(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def problem(self, key: str, message: str) -> None:
        self._problems.append(f"{self.at(key)}: {message}")

    def raw(self, key: str) -> object:
        return self._data.get(key)

    def text(
        self,
        key: str,
        default: str | None = None,
        pattern: re.Pattern[str] | None = None,
        max_length: int = 255,
    ) -> str:
        value = self._data.get(key, default)
        if value is None:
            self.problem(key, "required")
            return ""
        if not isinstance(value, str) or not value:
            self.problem(key, f"must be a non-empty string, not {value!r}")
            return default or ""
        if len(value) > max_length:
            self.problem(key, f"longer than {max_length} characters")
        elif pattern is not None and not pattern.match(value):
            self.problem(key, f"{value!r} must match {pattern.pattern}")
        return value

    def number(
        self, key: str, default: float, low: float, high: float, low_open: bool = True
    ) -> float:
        value = self._data.get(key, default)
        try:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError
            value = float(value)  # OverflowError for a 400-digit integer
            if math.isnan(value):
                raise ValueError
        except (ValueError, OverflowError):
            self.problem(key, f"must be a number, not {str(value)[:40]!r}")
            return default
        too_low = value <= low if low_open else value < low
        if too_low or value > high:
            bracket = "(" if low_open else "["
            self.problem(key, f"{value:g} is outside {bracket}{low:g}, {high:g}]")
            return default
        return float(value)

    def size(self, key: str, default: int, low: int, high: int) -> int:
        return self._bounded(key, default, low, high, parse_size)

    def duration(self, key: str, default: float, low: float, high: float) -> float:
        return self._bounded(key, default, low, high, parse_duration)

    def _bounded(self, key: str, default: T, low: T, high: T, parse: Callable[[object], T]) -> T:
        value = self._data.get(key, default)
        try:
            parsed = parse(value)
        except ValueError as exc:
            self.problem(key, str(exc))
            return default
        if not low <= parsed <= high:
            self.problem(key, f"{value} is outside [{low}, {high}]")
            return default
        return parsed

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"must be a whole number, not {value!r}")
            return default
        if not low <= value <= high:
            self.problem(key, f"{value} is outside [{low}, {high}]")
            return default
        return value

    def optional_text(self, key: str, max_length: int = 255) -> str | None:
        if self._data.get(key) is None:
            return None
        return self.text(key, max_length=max_length)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._data.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, f"must be true or false, not {value!r}")
            return default
        return value

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        value = self.text(key, default)
        if value not in choices:
            self.problem(key, f"{value!r} is not one of {', '.join(choices)}")
            return default
        return value

    def text_list(
        self, key: str, default: Sequence[str] = (), max_items: int = 100
    ) -> tuple[str, ...]:
        value = self._data.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.problem(key, f"must be a list of non-empty strings, not {value!r}")
            return tuple(default)
        if len(value) > max_items:
            self.problem(key, f"{len(value)} entries, at most {max_items}")
            return tuple(default)
        return tuple(value)
