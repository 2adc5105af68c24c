"""Agent config validation: invalid config is refused with the field named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig, config_from_mapping, load_config, parse_host_port
from agent.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _config(**overrides: Any) -> dict[str, Any]:
    check = {
        "id": "c1",
        "kind": "icmp",
        "target": "198.18.0.1",
        "interval": 10,
        "timeout": 1,
        "packets": 5,
        "spacing": 0.5,
    }
    check.update(overrides.pop("check", {}))
    data: dict[str, Any] = {
        "agent_id": "node-1",
        "collector": {"insecure": True},
        "checks": [check],
    }
    data.update(overrides)
    return data


def test_valid_config_loads_with_defaults() -> None:
    config = config_from_mapping(_config())
    assert isinstance(config, AgentConfig)
    assert config.collector.address == "127.0.0.1:4317"
    assert config.checks[0].packets == 5
    assert config.spool.dir == "slawatch-data/spool-node-1"
    assert config.spool.max_bytes == 256 << 20


@pytest.mark.parametrize(
    ("spool", "max_bytes", "max_age"),
    [
        ({"max_bytes": "64KiB", "max_age": "90s"}, 64 << 10, 90.0),
        ({"max_bytes": "1 GB", "max_age": "15m"}, 10**9, 900.0),
        ({"max_bytes": 1048576, "max_age": "12h"}, 1 << 20, 43_200.0),
        ({"max_bytes": "2GiB", "max_age": "7d"}, 2 << 30, 604_800.0),
        ({"max_age": 3600.5}, 256 << 20, 3600.5),
    ],
)
def test_spool_bounds_take_units(spool: dict[str, Any], max_bytes: int, max_age: float) -> None:
    config = config_from_mapping(_config(spool={"dir": "/var/spool/x", **spool}))
    assert (config.spool.dir, config.spool.max_bytes, config.spool.max_age) == (
        "/var/spool/x",
        max_bytes,
        max_age,
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"check": {"interval": -1}}, "checks[0].interval"),
        ({"check": {"kind": "smoke"}}, "checks[0].kind"),
        ({"check": {"target": "not-an-ip"}}, "is not an IPv4 or IPv6 address"),
        ({"check": {"kind": "tcp", "target": "198.18.0.1"}}, "is not HOST:PORT"),
        ({"check": {"kind": "tcp", "target": "h:70000"}}, "outside 1-65535"),
        ({"check": {"packets": 0}}, "checks[0].packets"),
        ({"check": {"packets": 30, "spacing": 1}}, "keep it within 90% of interval"),
        ({"check": {"timeout": 10}}, "keep it within 90% of interval"),
        ({"check": {"spacing": 0}}, "checks[0].spacing"),
        ({"check": {"interval": 10**400}}, "checks[0].interval: must be a number"),
        ({"labels": {f"k{i}": "v" for i in range(33)}}, "33 labels, at most 32"),
        ({"check": {"id": "bad id"}}, "checks[0].id"),
        ({"check": {"colour": "red"}}, "checks[0].colour"),
        ({"agent_id": ""}, "agent_id"),
        ({"collector": {"address": "nowhere"}}, "collector"),
        ({"labels": {"bad-key": "x"}}, "labels"),
        ({"jitter": 1.5}, "jitter"),
        ({"spool": {"max_bytes": "10KiB"}}, "spool.max_bytes: 10KiB is outside"),
        ({"spool": {"max_bytes": "lots"}}, "spool.max_bytes: 'lots' is not a size"),
        ({"spool": {"max_age": "5q"}}, "spool.max_age: '5q' is not a duration"),
        ({"spool": {"max_age": 30}}, "spool.max_age: 30 is outside"),
        ({"spool": {"dir": ""}}, "spool.dir"),
        ({"spool": {"depth": 3}}, "spool.depth: unknown setting"),
        ({"collector": {"insecure": True, "buffer_max": 5}}, "collector.buffer_max: unknown"),
    ],
)
def test_invalid_config_names_the_field(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(_config(**overrides))
    assert expected in str(info.value)


def test_duplicate_check_ids_are_refused() -> None:
    data = _config()
    data["checks"].append(dict(data["checks"][0]))
    with pytest.raises(ConfigError, match="duplicate check id 'c1'"):
        config_from_mapping(data)


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        config_from_mapping(["a"])


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("agent_id: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("checks: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_collector_address_override(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("agent_id: a\ncollector: {insecure: true}\n")
    assert load_config(path, "198.18.0.2:5000").collector.address == "198.18.0.2:5000"


@pytest.mark.parametrize("name", ["local-agent.yaml", "local-agent-tcp.yaml"])
def test_shipped_examples_are_valid(name: str) -> None:
    assert load_config(REPO / "examples" / name).checks


@pytest.mark.parametrize(
    ("text", "expected"),
    [("198.18.0.1:80", ("198.18.0.1", 80)), ("[2001:db8::1]:443", ("2001:db8::1", 443)),
     ("example.net:25", ("example.net", 25))],
)  # fmt: skip
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected
