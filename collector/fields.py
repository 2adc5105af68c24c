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
