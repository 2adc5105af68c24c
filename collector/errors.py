"""The collector's exception tree. Every error the collector raises on purpose is one of these.

CollectorError
├── ConfigError       bad command-line option or configuration value
│   └── InventoryError  the inventory file is invalid; carries every problem
│                       with its field path
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
