"""Policy files: the built-ins load, and a bad policy names every problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from collector.errors import PolicyError
from collector.sla.model import HOUR, MINUTE, Cause
from collector.sla.policy import builtin_policies, load_policies, policy_from_mapping


def test_one_built_in_policy_per_agreement() -> None:
    policies = builtin_policies()
    assert sorted(policies) == [
        "closte", "haisoft-network", "sonar", "sonoran-hypervisor", "sonoran-mail",
        "sonoran-web", "websoft9",
    ]  # fmt: skip
    sonoran = policies["sonoran-web"]
    assert (sonoran.target, sonoran.downtime.min_outage_ns) == (0.999, 5 * MINUTE)
    assert sonoran.maintenance.monthly_allowance_ns == 2 * HOUR
    assert sonoran.cause_rule(Cause.NETWORK).credit_min_ns == 10 * MINUTE
    assert not policies["sonoran-mail"].cause_rule(Cause.DDOS).counts
    assert policies["sonoran-web"].cause_rule(Cause.DDOS).counts
    sonar = policies["sonar"]
    assert (sonar.timezone, sonar.maintenance.notice_ns) == ("America/New_York", 72 * HOUR)
    assert policies["closte"].maintenance.patch_max_ns == 10 * MINUTE


def test_a_bad_policy_names_every_problem() -> None:
    bad = {
        "name": "Bad Name",
        "timezone": "Mars/Olympus",
        "target": 1.5,
        "downtime": {"mode": "sometimes"},
        "causes": {"network": {"credit_min": "ten"}, "weather": {}},
        "maintenance": {"blackout": {"weekdays": ["funday"], "from": "19:00", "to": "07:00"}},
        "credit": {"kind": "table", "cap": "150%", "table": [{"below": 0.9}, {"below": 0.99}]},
        "colour": "red",
    }
    with pytest.raises(PolicyError) as info:
        policy_from_mapping(bad, "bad.yaml")
    text = str(info.value)
    for expected in (
        "name: 'Bad Name' must match",
        "timezone: 'Mars/Olympus' is not an IANA time zone",
        "target: 1.5 is outside",
        "downtime.mode: 'sometimes' is not one of",
        "causes.network.credit_min: 'ten' is not a duration",
        "causes.weather: unknown setting",
        "maintenance.blackout.weekdays[0]: 'funday'",
        "maintenance.blackout.to: must be after from",
        "credit.cap: '150%' is outside",
        "credit.table: rows must go from the highest",
        "credit.table[0].credit: required",
        "colour: unknown setting",
    ):
        assert expected in text, expected


def test_a_user_policy_replaces_a_built_in_of_the_same_name(tmp_path: Path) -> None:
    closte = yaml.safe_load(
        (Path(__file__).parents[2] / "collector/sla/policies/closte.yaml").read_text()
    )
    closte["credit"]["table"] = [{"below": 0.9995, "credit": "10%"}]
    (tmp_path / "closte.yaml").write_text(yaml.safe_dump(closte))
    policies = load_policies((tmp_path,))
    assert policies["closte"].credit.table[0][0] == 0.9995
    assert "sonar" in policies


def test_an_unreadable_policy_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(PolicyError, match=r"broken\.yaml: invalid policy\n  not valid YAML"):
        load_policies((tmp_path,))
