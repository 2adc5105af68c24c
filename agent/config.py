"""The agent's YAML configuration, validated at start.

Invalid configuration is refused with a ``ConfigError`` that lists every
problem with the field it concerns (``checks[2].interval: must be > 0``),
before anything is probed or sent.

Validation is hand-written over frozen dataclasses rather than a schema
library: the agent must stay small (50 MB with a thousand checks), and a
validation library with its compiled schemas costs about 10 MB of that.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import yaml

from agent import yaml_events
from agent.check_options import (
    CheckOptions,
    check_url,
    read_dns,
    read_egress_loss,
    read_host,
    read_http,
    read_mail,
    read_path,
)
from agent.config_fields import Fields
from agent.errors import ConfigError

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
LABEL_KEY_PATTERN = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")
_PORT_TARGET = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\s]+):(?P<port>\d{1,5})$")
MAX_CHECKS = 100_000
MAX_LABELS = 32  # the collector's limit too
MIN_INTERVAL = 0.1
# Probes of a round at least 1 ms apart: bursts overflow the receive queue.
MIN_SPACING = 0.001
# The part of its interval a round may take at most.
ROUND_SHARE = 0.9
DAY = 86_400.0
MIN_SPOOL_BYTES = 64 << 10


class CheckKind(StrEnum):
    ICMP = "icmp"
    TCP = "tcp"
    HTTP = "http"
    SMTP = "smtp"
    POP3 = "pop3"
    DNS = "dns"
    HOST = "host"
    EGRESS_LOSS = "egress_loss"
    PATH = "path"


# Kinds whose round sends several probes (``packets`` x ``spacing``); the
# others make one exchange per round.
MULTI_PROBE_KINDS = frozenset({CheckKind.ICMP, CheckKind.TCP, CheckKind.EGRESS_LOSS})


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """One configured measurement."""

    id: str
    kind: CheckKind
    target: str
    interval: float = 60.0
    timeout: float = 2.0
    # Probes per round (ICMP echoes, TCP connects) and the gap between them.
    packets: int = 1
    spacing: float = 1.0
    # The kind's own options (http:, smtp:, pop3:, dns:, host: blocks).
    options: CheckOptions | None = None


@dataclass(frozen=True, slots=True)
class UplinkTls:
    """mTLS to the collector: its CA, and this agent's certificate (CN = agent id)."""

    ca_file: str
    cert_file: str
    key_file: str
    # The name to verify the collector's certificate against, if not the address's host.
    server_name: str | None = None


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    address: str = "127.0.0.1:4317"
    tls: UplinkTls | None = None
    # Plaintext without identity: only when asked for in so many words.
    insecure: bool = False
    # Observations are sent in batches of at most this many, at least this often.
    batch_max: int = 500
    flush_interval: float = 1.0
    heartbeat_interval: float = 15.0


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    """Where batches wait, on disk, until the collector acks them; and the bounds."""

    dir: str
    max_bytes: int = 256 << 20
    max_age: float = 7 * DAY


@dataclass(frozen=True, slots=True)
class AgentConfig:
    agent_id: str
    collector: CollectorConfig = CollectorConfig()
    spool: SpoolConfig = SpoolConfig("slawatch-data/spool")
    labels: Mapping[str, str] = field(default_factory=dict)
    # Fraction of an interval over which check start times are spread.
    jitter: float = 0.5
    checks: tuple[CheckConfig, ...] = ()


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 address") from None


def parse_host_port(text: str) -> tuple[str, int]:
    """Split ``host:port`` or ``[v6]:port``; the port must be 1-65535."""
    match = _PORT_TARGET.match(text)
    if not match:
        raise ValueError(f"{text!r} is not HOST:PORT (use [addr]:port for IPv6)")
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} in {text!r} is outside 1-65535")
    return match["host"].strip("[]"), port


_OPTION_READERS: dict[CheckKind, Callable[[object, str, list[str]], CheckOptions]] = {
    CheckKind.HTTP: read_http,
    CheckKind.SMTP: read_mail,
    CheckKind.POP3: read_mail,
    CheckKind.DNS: read_dns,
    CheckKind.HOST: read_host,
    CheckKind.EGRESS_LOSS: read_egress_loss,
    CheckKind.PATH: read_path,
}
_CHECK_KEYS = {"id", "kind", "target", "interval", "timeout", "packets", "spacing"}


def parse_dns_server(text: str) -> tuple[str, int]:
    """A DNS server: an address (port 53) or HOST:PORT."""
    try:
        return str(parse_ip(text)), 53
    except ValueError:
        return parse_host_port(text)


def _check_target(kind: CheckKind, target: str) -> None:
    if kind in (CheckKind.ICMP, CheckKind.EGRESS_LOSS, CheckKind.PATH):
        parse_ip(target)
    elif kind in (CheckKind.TCP, CheckKind.SMTP, CheckKind.POP3):
        parse_host_port(target)
    elif kind is CheckKind.HTTP:
        check_url(target)
    elif kind is CheckKind.DNS:
        parse_dns_server(target)


def _read_kind(f: Fields) -> CheckKind | None:
    kind_text = f.text("kind")
    try:
        return CheckKind(kind_text)
    except ValueError:
        if kind_text:
            f.problem("kind", f"{kind_text!r} is not one of {', '.join(CheckKind)}")
        return None


def _read_options(
    f: Fields, kind: CheckKind | None, path: str, problems: list[str]
) -> CheckOptions | None:
    for other in _OPTION_READERS:
        if other is not kind and f.raw(other.value) is not None:
            f.problem(other.value, f"options for {other.value} checks, but this is a {kind} check")
    if kind is None or kind not in _OPTION_READERS:
        return None
    return _OPTION_READERS[kind](f.raw(kind.value), f.at(kind.value), problems)


def _read_check(data: object, path: str, problems: list[str]) -> CheckConfig | None:
    before = len(problems)
    f = Fields(data, path, _CHECK_KEYS | {k.value for k in _OPTION_READERS}, problems)
    check_id = f.text("id", pattern=ID_PATTERN)
    kind = _read_kind(f)
    target = f.text("target")
    interval = f.number("interval", 60.0, MIN_INTERVAL, DAY, low_open=False)
    timeout = f.number("timeout", 2.0, 0, 3600)
    packets = f.integer("packets", 1, 1, 10_000)
    spacing = f.number("spacing", 1.0, MIN_SPACING, 60, low_open=False)
    options = _read_options(f, kind, path, problems)
    if kind is not None and target:
        try:
            _check_target(kind, target)
        except ValueError as exc:
            f.problem("target", str(exc))
    if kind is not None and kind not in MULTI_PROBE_KINDS and packets != 1:
        f.problem("packets", f"{kind} checks make one exchange per round; leave packets at 1")
    round_time = (packets - 1) * spacing + timeout
    if round_time > ROUND_SHARE * interval:
        # A round that can last its whole interval would make the next one be
        # skipped whenever the target is down: exactly when rounds matter most.
        problems.append(
            f"{path}: a round takes up to (packets-1)*spacing+timeout = {round_time:g}s; "
            f"keep it within {ROUND_SHARE:.0%} of interval {interval:g}s"
        )
    if len(problems) > before or kind is None:
        return None
    return CheckConfig(check_id, kind, target, interval, timeout, packets, spacing, options)


def checks_from_data(data: object, source: str) -> tuple[CheckConfig, ...]:
    """A whole check list (as pushed by the collector), validated like ``checks:``."""
    problems: list[str] = []
    if not isinstance(data, list):
        raise ConfigError(f"{source}: must be a list of checks")
    checks = _read_checks(data, problems)
    if problems:
        raise ConfigError(f"{source}: invalid\n  " + "\n  ".join(problems))
    return checks


def check_from_mapping(data: Mapping[str, object], source: str = "probe") -> CheckConfig:
    """One check, validated exactly like a check in the config file."""
    problems: list[str] = []
    check = _read_check(dict(data), "check", problems)
    if problems or check is None:
        raise ConfigError(f"{source}: invalid check\n  " + "\n  ".join(problems))
    return check


def _read_collector(data: object, problems: list[str]) -> CollectorConfig:
    default = CollectorConfig()
    f = Fields(data, "collector", {"address", "tls", "insecure", "batch_max", "flush_interval",
                                    "heartbeat_interval"}, problems)  # fmt: skip
    address = f.text("address", default.address)
    try:
        parse_host_port(address)
    except ValueError as exc:
        f.problem("address", str(exc))
    tls = _read_uplink_tls(f.raw("tls"), problems) if f.raw("tls") is not None else None
    insecure = f.boolean("insecure", False)
    if tls is None and not insecure:
        f.problem("tls", "required: tls (ca_file, cert_file, key_file), or insecure: true")
    elif tls is not None and insecure:
        f.problem("insecure", "give tls or insecure: true, not both")
    return CollectorConfig(
        address=address,
        tls=tls,
        insecure=insecure,
        batch_max=f.integer("batch_max", default.batch_max, 1, 10_000),
        flush_interval=f.number("flush_interval", default.flush_interval, 0.05, 60, low_open=False),
        heartbeat_interval=f.number(
            "heartbeat_interval", default.heartbeat_interval, 1, 600, low_open=False
        ),
    )


def default_spool_dir(agent_id: str) -> str:
    return f"slawatch-data/spool-{agent_id}"


def _read_spool(data: object, agent_id: str, problems: list[str]) -> SpoolConfig:
    f = Fields(data, "spool", {"dir", "max_bytes", "max_age"}, problems)
    default = SpoolConfig(default_spool_dir(agent_id))
    return SpoolConfig(
        dir=f.text("dir", default.dir, max_length=4096),
        max_bytes=f.size("max_bytes", default.max_bytes, MIN_SPOOL_BYTES, 1 << 40),
        # Beyond 30 days the collector (40 days by default) would refuse the batches.
        max_age=f.duration("max_age", default.max_age, 60.0, 30 * DAY),
    )


def _read_uplink_tls(data: object, problems: list[str]) -> UplinkTls | None:
    f = Fields(data, "collector.tls", {"ca_file", "cert_file", "key_file", "server_name"},
               problems)  # fmt: skip
    files = {}
    for key in ("ca_file", "cert_file", "key_file"):
        path = f.text(key, max_length=4096)
        if path and not os.access(path, os.R_OK):
            f.problem(key, f"{path!r} is not a readable file")
        files[key] = path
    return UplinkTls(**files, server_name=f.optional_text("server_name"))


def _read_labels(data: object, problems: list[str]) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        problems.append("labels: must be a mapping of names to values")
        return {}
    if len(data) > MAX_LABELS:
        problems.append(f"labels: {len(data)} labels, at most {MAX_LABELS}")
        return {}
    labels: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not LABEL_KEY_PATTERN.match(key):
            problems.append(f"labels: {key!r} must match {LABEL_KEY_PATTERN.pattern}")
        elif not isinstance(value, str) or len(value) > 256:
            problems.append(f"labels.{key}: must be a string of at most 256 characters")
        else:
            labels[key] = value
    return labels


def _read_checks(data: object, problems: list[str]) -> tuple[CheckConfig, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        problems.append("checks: must be a list of checks")
        return ()
    if len(data) > MAX_CHECKS:
        problems.append(f"checks: {len(data)} checks, at most {MAX_CHECKS}")
        return ()
    checks = [_read_check(item, f"checks[{i}]", problems) for i, item in enumerate(data)]
    seen: set[str] = set()
    for check in checks:
        if check is not None and check.id in seen:
            problems.append(f"checks: duplicate check id {check.id!r}")
        if check is not None:
            seen.add(check.id)
    return tuple(c for c in checks if c is not None)


def config_from_mapping(data: object, source: str = "config") -> AgentConfig:
    """Validate parsed YAML; raise ConfigError listing every problem."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of settings")
    problems: list[str] = []
    f = Fields(data, "", {"agent_id", "collector", "spool", "labels", "jitter", "checks"}, problems)
    agent_id = f.text("agent_id", pattern=ID_PATTERN)
    config = AgentConfig(
        agent_id=agent_id,
        collector=_read_collector(f.raw("collector"), problems),
        spool=_read_spool(f.raw("spool"), agent_id, problems),
        labels=_read_labels(f.raw("labels"), problems),
        jitter=f.number("jitter", 0.5, 0.0, 0.999, low_open=False),
        checks=_read_checks(f.raw("checks"), problems),
    )
    if problems:
        raise ConfigError(f"{source}: invalid configuration\n  " + "\n  ".join(problems))
    return config


def load_config(path: Path, collector_address: str | None = None) -> AgentConfig:
    """Load and validate; ``collector_address`` overrides ``collector.address``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml_events.load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if collector_address is not None and isinstance(data, dict):
        collector = data.get("collector")
        data["collector"] = {
            **(collector if isinstance(collector, dict) else {}),
            "address": collector_address,
        }
    return config_from_mapping(data, str(path))
