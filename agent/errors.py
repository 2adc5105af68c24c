"""The agent's exception tree. Every error the agent raises on purpose is one of these.

    AgentError
    ├── ConfigError          the YAML config is unreadable or invalid (names the field)
    ├── ProbeSetupError      a probe cannot run at all on this node
    │   └── IcmpPermissionError   no raw socket and no unprivileged ICMP allowed
    ├── SpoolError           the on-disk spool cannot be opened or written
    └── UplinkError          the collector refused us for good (not a network blip)

Failures of a single probe round are not exceptions: they become observations
with an outcome and an error class (see ``agent.probes.base``).
"""


class AgentError(Exception):
    """Base of every error the agent raises deliberately."""


class ConfigError(AgentError):
    """The configuration is invalid; the message names the offending field."""


class ProbeSetupError(AgentError):
    """A probe kind cannot work on this node (missing privilege, no such family ...)."""


class IcmpPermissionError(ProbeSetupError):
    """Neither a raw ICMP socket nor an unprivileged ICMP datagram socket is allowed."""


class SpoolError(AgentError):
    """The spool folder is unusable: locked by another agent, unwritable, or corrupt."""


class UplinkError(AgentError):
    """The collector rejected the agent permanently (bad identity, bad protocol)."""
