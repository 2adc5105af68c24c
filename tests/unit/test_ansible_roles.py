"""Every role variable is documented in meta/argument_specs.yml, with the same default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "deploy" / "ansible" / "roles"
ROLE_NAMES = sorted(p.name for p in ROLES.iterdir() if (p / "defaults" / "main.yml").exists())


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_the_collection_has_its_roles() -> None:
    assert ROLE_NAMES == ["slawatch_agent", "slawatch_collector", "slawatch_install"]


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_defaults_equal_argument_specs(role: str) -> None:
    defaults = _load(ROLES / role / "defaults" / "main.yml")
    options = _load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"]["main"][
        "options"
    ]
    assert sorted(defaults) == sorted(options)
    for name, value in defaults.items():
        assert options[name].get("default") == value, f"{role}: {name}'s default differs"
        assert options[name].get("description"), f"{role}: {name} has no description"


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_variables_carry_the_role_prefix(role: str) -> None:
    for name in _load(ROLES / role / "defaults" / "main.yml"):
        assert name.startswith(f"{role}_"), name


def test_example_collector_inventory_is_valid() -> None:
    """The example group_vars hold an inventory the collector accepts as it stands."""
    from collector.inventory import inventory_from_mapping

    group_vars = ROLES.parent / "examples" / "group_vars" / "slawatch_collectors.yml"
    inventory = inventory_from_mapping(_load(group_vars)["slawatch_collector_inventory"])
    assert set(inventory.agents) == {"hv-fra-01", "hv-fra-02"}
