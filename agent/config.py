"""The agent's YAML configuration, validated at start.

Invalid configuration is refused with a ``ConfigError`` whose message names
the field (``checks[2].interval: ...``), before anything is probed or sent.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.errors import ConfigError

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_PORT_TARGET = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\s]+):(?P<port>\d{1,5})$")

Seconds = Annotated[float, Field(gt=0, le=86_400)]


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


class CheckKind(StrEnum):
    ICMP = "icmp"
    TCP = "tcp"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckConfig(_Strict):
    """One configured measurement."""

    id: Annotated[str, Field(pattern=_ID_PATTERN)]
    kind: CheckKind
    target: Annotated[str, Field(min_length=1, max_length=255)]
    interval: Seconds = 60.0
    timeout: Seconds = 2.0
    # Probes per round (ICMP echoes, TCP connects) and the gap between them.
    packets: Annotated[int, Field(ge=1, le=10_000)] = 1
    spacing: Annotated[float, Field(ge=0.0, le=60.0)] = 1.0

    @model_validator(mode="after")
    def _check_target_and_timing(self) -> CheckConfig:
        if self.kind is CheckKind.ICMP:
            parse_ip(self.target)
        else:
            parse_host_port(self.target)
        round_time = (self.packets - 1) * self.spacing + self.timeout
        if round_time > self.interval:
            raise ValueError(
                f"a round takes up to (packets-1)*spacing+timeout = {round_time:g}s, "
                f"longer than interval {self.interval:g}s"
            )
        return self


class CollectorConfig(_Strict):
    address: Annotated[str, Field(min_length=1)] = "127.0.0.1:4317"
    # Observations are sent in batches of at most this many, at least this often.
    batch_max: Annotated[int, Field(ge=1, le=10_000)] = 500
    flush_interval: Annotated[float, Field(gt=0, le=60)] = 1.0
    heartbeat_interval: Annotated[float, Field(gt=0, le=600)] = 15.0
    # Observations kept in memory while the collector is unreachable.
    buffer_max: Annotated[int, Field(ge=100, le=10_000_000)] = 100_000

    @model_validator(mode="after")
    def _check_address(self) -> CollectorConfig:
        parse_host_port(self.address)
        return self


class AgentConfig(_Strict):
    agent_id: Annotated[str, Field(pattern=_ID_PATTERN)]
    collector: CollectorConfig = CollectorConfig()
    labels: dict[Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")], str] = {}
    # Fraction of an interval over which check start times are spread.
    jitter: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5
    checks: Annotated[list[CheckConfig], Field(max_length=100_000)] = []

    @model_validator(mode="after")
    def _unique_check_ids(self) -> AgentConfig:
        seen: set[str] = set()
        for check in self.checks:
            if check.id in seen:
                raise ValueError(f"duplicate check id {check.id!r}")
            seen.add(check.id)
        return self


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def config_from_mapping(data: Any, source: str = "config") -> AgentConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of settings")
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{_field_path(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise ConfigError(f"{source}: invalid configuration\n  " + "\n  ".join(problems)) from None


def load_config(path: Path, collector_address: str | None = None) -> AgentConfig:
    """Load and validate; ``collector_address`` overrides ``collector.address``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if collector_address is not None and isinstance(data, dict):
        collector = data.get("collector")
        data["collector"] = {
            **(collector if isinstance(collector, dict) else {}),
            "address": collector_address,
        }
    return config_from_mapping(data, str(path))
