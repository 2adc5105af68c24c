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
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import yaml

from agent import yaml_events
from agent.errors import ConfigError

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
LABEL_KEY_PATTERN = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")
_PORT_TARGET = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\s]+):(?P<port>\d{1,5})$")
MAX_CHECKS = 100_000
DAY = 86_400.0


class CheckKind(StrEnum):
    ICMP = "icmp"
    TCP = "tcp"


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


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    address: str = "127.0.0.1:4317"
    # Observations are sent in batches of at most this many, at least this often.
    batch_max: int = 500
    flush_interval: float = 1.0
    heartbeat_interval: float = 15.0
    # Observations kept in memory while the collector is unreachable.
    buffer_max: int = 100_000


@dataclass(frozen=True, slots=True)
class AgentConfig:
    agent_id: str
    collector: CollectorConfig = CollectorConfig()
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


class _Fields:
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
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            self.problem(key, f"must be a number, not {value!r}")
            return default
        too_low = value <= low if low_open else value < low
        if too_low or value > high:
            bracket = "(" if low_open else "["
            self.problem(key, f"{value:g} is outside {bracket}{low:g}, {high:g}]")
            return default
        return float(value)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"must be a whole number, not {value!r}")
            return default
        if not low <= value <= high:
            self.problem(key, f"{value} is outside [{low}, {high}]")
            return default
        return value


def _read_check(data: object, path: str, problems: list[str]) -> CheckConfig | None:
    before = len(problems)
    f = _Fields(data, path, {"id", "kind", "target", "interval", "timeout", "packets",
                             "spacing"}, problems)  # fmt: skip
    check_id = f.text("id", pattern=ID_PATTERN)
    kind_text = f.text("kind")
    try:
        kind: CheckKind | None = CheckKind(kind_text)
    except ValueError:
        kind = None
        if kind_text:
            f.problem("kind", f"{kind_text!r} is not one of {', '.join(CheckKind)}")
    target = f.text("target")
    interval = f.number("interval", 60.0, 0, DAY)
    timeout = f.number("timeout", 2.0, 0, 3600)
    packets = f.integer("packets", 1, 1, 10_000)
    spacing = f.number("spacing", 1.0, 0, 60, low_open=False)
    if kind is not None and target:
        try:
            parse_ip(target) if kind is CheckKind.ICMP else parse_host_port(target)
        except ValueError as exc:
            f.problem("target", str(exc))
    round_time = (packets - 1) * spacing + timeout
    if round_time > interval:
        problems.append(
            f"{path}: a round takes up to (packets-1)*spacing+timeout = {round_time:g}s, "
            f"longer than interval {interval:g}s"
        )
    if len(problems) > before or kind is None:
        return None
    return CheckConfig(check_id, kind, target, interval, timeout, packets, spacing)


def _read_collector(data: object, problems: list[str]) -> CollectorConfig:
    default = CollectorConfig()
    f = _Fields(data, "collector", {"address", "batch_max", "flush_interval",
                                    "heartbeat_interval", "buffer_max"}, problems)  # fmt: skip
    address = f.text("address", default.address)
    try:
        parse_host_port(address)
    except ValueError as exc:
        f.problem("address", str(exc))
    return CollectorConfig(
        address=address,
        batch_max=f.integer("batch_max", default.batch_max, 1, 10_000),
        flush_interval=f.number("flush_interval", default.flush_interval, 0, 60),
        heartbeat_interval=f.number("heartbeat_interval", default.heartbeat_interval, 0, 600),
        buffer_max=f.integer("buffer_max", default.buffer_max, 100, 10_000_000),
    )


def _read_labels(data: object, problems: list[str]) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        problems.append("labels: must be a mapping of names to values")
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
    f = _Fields(data, "", {"agent_id", "collector", "labels", "jitter", "checks"}, problems)
    config = AgentConfig(
        agent_id=f.text("agent_id", pattern=ID_PATTERN),
        collector=_read_collector(f.raw("collector"), problems),
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
