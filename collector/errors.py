"""The collector's exception tree. Every error the collector raises on purpose is one of these.

CollectorError
├── ConfigError       bad command-line option or configuration value
│   ├── InventoryError  the inventory file is invalid; carries every problem
│   │                   with its field path
│   ├── PolicyError     an SLA policy file is invalid (every problem, by field)
│   └── InputFileError  an import file is invalid; carries every problem as
│                       ``line N: field: message`` (nothing was imported)
├── InvalidMessage    an agent sent something that breaks the wire contract;
│                     carries a rule code (bounded, used as a metric label)
│                     and a reason naming the field
└── StoreError        the store cannot be opened or written
"""

from collections.abc import Sequence


class CollectorError(Exception):
    """Base of every error the collector raises deliberately."""


class ConfigError(CollectorError):
    """A configuration value is invalid; the message names it."""


class InventoryError(ConfigError):
    """The inventory file cannot be used.

    ``problems`` lists every problem found, each naming its field
    (``sites[0].segments[1].nodes[2].address: ...``) or, for a file that
    cannot be read or parsed, the reason; ``source`` is the file.
    """

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"{source}: invalid inventory\n  " + "\n  ".join(self.problems))


class InvalidMessage(CollectorError):
    """A message from an agent violates the wire contract.

    ``rule`` is one of a small fixed set of codes (see ``collector.ingest.validate``)
    so it can label metrics; ``reason`` is the human-readable detail.
    """

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"{rule}: {reason}")
        self.rule = rule
        self.reason = reason


class StoreError(CollectorError):
    """The store failed; nothing of the failed write was kept."""


class PolicyError(ConfigError):
    """An SLA policy cannot be used; ``problems`` names every field at fault."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"{source}: invalid policy\n  " + "\n  ".join(self.problems))


class InputFileError(ConfigError):
    """An import file (JSON Lines, docs/import-format.md) cannot be imported; nothing was.

    ``problems`` lists every problem found, each as ``line N: field: message``
    (or, for a file that cannot be read, the reason); ``source`` is the file.
    """

    # Shown in the message; ``problems`` keeps them all. A file that is wrong
    # throughout would otherwise print a line per line of input.
    SHOWN = 200

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        shown = list(self.problems[: self.SHOWN])
        if len(self.problems) > self.SHOWN:
            shown.append(f"... and {len(self.problems) - self.SHOWN} more problems")
        super().__init__(f"{source}: nothing imported\n  " + "\n  ".join(shown))
