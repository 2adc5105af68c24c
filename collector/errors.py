"""The collector's exception tree. Every error the collector raises on purpose is one of these.

CollectorError
├── ConfigError       bad command-line option or configuration value
├── InvalidMessage    an agent sent something that breaks the wire contract;
│                     carries a rule code (bounded, used as a metric label)
│                     and a reason naming the field
└── StoreError        the store cannot be opened or written
"""


class CollectorError(Exception):
    """Base of every error the collector raises deliberately."""


class ConfigError(CollectorError):
    """A configuration value is invalid; the message names it."""


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
