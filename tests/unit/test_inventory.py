"""The collector's inventory: validation with field paths, references, placeholders, versions."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from agent.config import config_from_mapping
from collector import inventory as inventory_module
from collector.cli import main
from collector.errors import ConfigError, InventoryError
from collector.inventory import Inventory, inventory_from_mapping, load_inventory

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "inventory.yaml"
NODE0 = "sites[0].segments[0].nodes[0]"


def _data(*checks: dict[str, Any], **top: Any) -> dict[str, Any]:
    """One site, one segment, an IPv4 node with agent a1 and an IPv6 node without one."""
    data: dict[str, Any] = {
        "sites": [
            {
                "id": "s1",
                "segments": [
                    {
                        "id": "seg1",
                        "nodes": [
                            {"id": "n1", "address": "198.18.1.2", "agent": "a1"},
                            {"id": "n6", "address": "2001:db8::6"},
                        ],
                    }
                ],
            }
        ],
        "services": [{"id": "web", "node": "n6", "owner": "acme", "contract": "sonoran-web"}],
        "agents": {"a1": {"checks": list(checks)}},
    }
    data.update(top)
    return data


def _problems(data: object) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        inventory_from_mapping(data)
    return list(caught.value.problems)


# A file whose one node runs agent "a"; the lines given follow its `checks:` (line 4).
_ONE_AGENT = (
    "sites: [{id: s, segments: [{id: g, nodes: [{id: n, address: 198.18.0.1, agent: a}]}]}]\n"
    "agents:\n  a:\n    checks:\n"
)


def _file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "inv.yaml"
    path.write_text(_ONE_AGENT + "".join(f"{line}\n" for line in lines))
    return path


def _pushed(*checks: dict[str, Any]) -> list[dict[str, Any]]:
    inventory = inventory_from_mapping(_data(*checks))
    return [dict(check) for check in inventory.agents["a1"].checks]


# -- the example and a valid inventory ---------------------------------------


def test_the_example_loads_with_a_node_checked_from_other_nodes() -> None:
    inventory = load_inventory(EXAMPLE)
    assert [site.id for site in inventory.sites] == ["fra1", "ams1"]
    assert len(inventory.segments) == 3
    assert list(inventory.agents) == ["hv-fra-01", "hv-fra-02", "mail-ams-01"]
    # vm-acme-web has no agent and is checked from two other nodes at two sites.
    services = inventory.check_services.items()
    watchers = {agent for (agent, _), service in services if service == "acme-web"}
    assert watchers == {"hv-fra-01", "hv-fra-02", "mail-ams-01"}
    assert inventory.nodes["vm-acme-web"].agent is None


def test_every_push_of_the_example_passes_the_agents_own_rules() -> None:
    # The wire contract: checks_yaml is a list in the agent config's checks: format.
    for agent in load_inventory(EXAMPLE).agents.values():
        checks = yaml.safe_load(agent.checks_yaml)
        config = config_from_mapping(
            {"agent_id": agent.agent_id, "collector": {"insecure": True}, "checks": checks}
        )
        assert len(config.checks) == len(agent.checks) > 0


def test_a_valid_inventory_is_typed_and_frozen() -> None:
    inventory = inventory_from_mapping(_data({"id": "gw", "kind": "icmp", "target": "1.2.3.4"}))
    assert isinstance(inventory, Inventory)
    node = inventory.nodes["n6"]
    assert (node.site, node.segment, node.agent) == ("s1", "seg1", None)
    assert str(node.address) == "2001:db8::6"
    assert inventory.services["web"].description is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.id = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        inventory.nodes["x"] = node  # type: ignore[index]


def test_an_agent_without_an_agents_entry_gets_an_empty_check_list() -> None:
    inventory = inventory_from_mapping(_data(agents=None))
    agent = inventory.agents["a1"]
    assert agent.checks == ()
    assert yaml.safe_load(agent.checks_yaml) == []
    assert agent.node == "n1"


# -- problems with their paths ------------------------------------------------


def test_every_problem_is_listed_with_its_path() -> None:
    data = _data(
        {"id": "c1", "kind": "icmp", "target": "${node:n9}", "service": "nope"},
        {"id": "bad id!", "kind": "tcp"},
        {"kind": 3},
        "just a string",
        colour="red",
    )
    node = data["sites"][0]["segments"][0]["nodes"][0]
    node.update(address="10.0.0.x", rack="a1")
    data["sites"][0]["segments"][0]["nodes"][1]["labels"] = {"9bad": "x", "ok": 5}
    data["services"][0].pop("owner")
    data["agents"]["a1"]["interval"] = 5
    assert _problems(data) == [
        "colour: unknown setting",
        f"{NODE0}.rack: unknown setting",
        f"{NODE0}.address: '10.0.0.x' is not an IPv4 or IPv6 address",
        "sites[0].segments[0].nodes[1].labels: '9bad' must match ^[a-zA-Z_][a-zA-Z0-9_]{0,63}$",
        "sites[0].segments[0].nodes[1].labels.ok: must be a string of at most 256 characters",
        "services[0].owner: required",
        "agents.a1.interval: unknown setting",
        "agents.a1.checks[0].service: 'nope' is not a service of this inventory",
        "agents.a1.checks[0].target: '${node:n9}' names no node of this inventory",
        "agents.a1.checks[1].id: 'bad id!' must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
        "agents.a1.checks[2].id: required",
        "agents.a1.checks[2].kind: must be a non-empty string, not 3",
        "agents.a1.checks[3]: must be a mapping of settings",
    ]


def test_the_error_names_the_source_and_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        inventory_from_mapping({"sites": "x"}, source="inv.yaml")
    assert str(caught.value) == "inv.yaml: invalid inventory\n  sites: must be a list"
    with pytest.raises(InventoryError, match="top level must be a mapping"):
        inventory_from_mapping([1, 2])


@pytest.mark.parametrize(
    ("where", "key"),
    [
        (lambda d: d["sites"][0], "sites[0].zone"),
        (lambda d: d["sites"][0]["segments"][0], "sites[0].segments[0].zone"),
        (lambda d: d["services"][0], "services[0].zone"),
        (lambda d: d["agents"]["a1"], "agents.a1.zone"),
    ],
)
def test_unknown_settings_anywhere(where: Any, key: str) -> None:
    data = _data()
    where(data)["zone"] = 1
    assert _problems(data) == [f"{key}: unknown setting"]


def test_references_must_resolve() -> None:
    data = _data(agents={"a1": {"checks": []}, "ghost": {"checks": []}})
    data["services"].append({"id": "db", "node": "n7", "owner": "o", "contract": "c"})
    assert _problems(data) == [
        "services[1].node: 'n7' is not a node of this inventory",
        "agents.ghost: no node has agent 'ghost'",
    ]


def test_ids_are_unique_across_the_whole_inventory() -> None:
    data = _data({"id": "c", "kind": "icmp"}, {"id": "c", "kind": "tcp"})
    first = data["sites"][0]
    data["sites"].append(
        {
            "id": "s1",
            "segments": [
                {"id": "seg1", "nodes": [{"id": "n1", "address": "198.18.9.9", "agent": "a1"}]}
            ],
        }
    )
    data["services"].append(dict(data["services"][0]))
    assert first["id"] == "s1"
    assert _problems(data) == [
        "sites[1].id: site 's1' is also at sites[0]",
        "sites[1].segments[0].id: segment 'seg1' is also at sites[0].segments[0]",
        f"sites[1].segments[0].nodes[0].id: node 'n1' is also at {NODE0}",
        f"sites[1].segments[0].nodes[0].agent: agent 'a1' is also at {NODE0}",
        "services[1].id: service 'web' is also at services[0]",
        "agents.a1.checks[1].id: check id 'c' is also at agents.a1.checks[0]",
    ]


def test_one_agent_id_on_two_nodes_is_a_problem() -> None:
    data = _data()
    data["sites"][0]["segments"][0]["nodes"][1]["agent"] = "a1"
    assert _problems(data) == [
        f"sites[0].segments[0].nodes[1].agent: agent 'a1' is also at {NODE0}"
    ]


def test_an_ipv6_address_with_a_zone_is_refused() -> None:
    data = _data()
    data["sites"][0]["segments"][0]["nodes"][1]["address"] = "fe80::1%eth0"
    (problem,) = _problems(data)
    assert problem.startswith("sites[0].segments[0].nodes[1].address: 'fe80::1%eth0' has a zone")


# -- the pushed document: placeholders, service, version ----------------------


def test_node_placeholders_become_addresses_v4_and_v6() -> None:
    pushed = _pushed(
        {"id": "v4", "kind": "icmp", "target": "${node:n1}"},
        {"id": "v4h", "kind": "tcp", "target": "${node-host:n1}:22"},
        {"id": "v6", "kind": "icmp", "target": "${node:n6}"},
        {"id": "v6h", "kind": "tcp", "target": "${node-host:n6}:443"},
        {"id": "url", "kind": "http", "target": "https://${node-host:n6}:8443/x"},
        {"id": "deep", "kind": "dns", "target": "${node:n1}", "dns": {"expect": ["${node:n6}"]}},
        {"id": "both", "kind": "x", "target": "${node:n1}-${node:n6} $${node:n1}"},
    )
    assert [check["target"] for check in pushed] == [
        "198.18.1.2",
        "198.18.1.2:22",
        "2001:db8::6",
        "[2001:db8::6]:443",
        "https://[2001:db8::6]:8443/x",
        "198.18.1.2",
        "198.18.1.2-2001:db8::6 ${node:n1}",
    ]
    assert pushed[5]["dns"] == {"expect": ["2001:db8::6"]}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("${node:n6}:443", "'n6' has an IPv6 address, which needs brackets"),
        ("https://${node:n6}/", "write ${node-host:n6}"),
        ("${host:n1}", "'${host:n1}' is not a placeholder"),
        ("${node:}", "'${node:}' is not a placeholder"),
        ("x${node:n1", "'${node:n1' is not a placeholder"),
        ("${node-host:n2}:1", "'${node-host:n2}' names no node"),
    ],
)
def test_bad_placeholders_are_problems(target: str, message: str) -> None:
    (problem,) = _problems(_data({"id": "c", "kind": "tcp", "target": target}))
    assert problem.startswith("agents.a1.checks[0].target: ")
    assert message in problem


def test_an_ipv4_node_needs_no_brackets_anywhere() -> None:
    pushed = _pushed({"id": "c", "kind": "http", "target": "http://${node:n1}:80/"})
    assert pushed[0]["target"] == "http://198.18.1.2:80/"


def test_service_is_recorded_and_stripped_from_the_push() -> None:
    inventory = inventory_from_mapping(
        _data(
            {"id": "web-https", "kind": "http", "target": "https://x/", "service": "web"},
            {"id": "gw", "kind": "icmp", "target": "198.18.1.1"},
        )
    )
    agent = inventory.agents["a1"]
    assert dict(inventory.check_services) == {("a1", "web-https"): "web"}
    assert all("service" not in check for check in agent.checks)
    assert "service" not in agent.checks_yaml
    assert yaml.safe_load(agent.checks_yaml) == [dict(check) for check in agent.checks]


def test_other_keys_pass_through_untouched() -> None:
    check = {"id": "c", "kind": "future-kind", "target": 7, "weird": {"a": [1.5, None, True]}}
    assert _pushed(check) == [check]


def test_version_is_stable_and_follows_the_content() -> None:
    check = {"id": "gw", "kind": "icmp", "target": "198.18.1.1", "interval": 10}
    reordered = dict(reversed(list(check.items())))
    first = inventory_from_mapping(_data(check)).agents["a1"]
    again = inventory_from_mapping(_data(reordered)).agents["a1"]
    changed = inventory_from_mapping(_data({**check, "interval": 11})).agents["a1"]
    assert first.version == again.version
    assert first.checks_yaml == again.checks_yaml
    assert changed.version != first.version
    assert len(first.version) == 16
    assert first.version == hashlib.sha256(first.checks_yaml.encode()).hexdigest()[:16]


def test_version_follows_a_node_address_the_checks_use() -> None:
    check = {"id": "c", "kind": "icmp", "target": "${node:n6}"}
    before = inventory_from_mapping(_data(check)).agents["a1"].version
    data = _data(check)
    data["sites"][0]["segments"][0]["nodes"][1]["address"] = "2001:db8::7"
    assert inventory_from_mapping(data).agents["a1"].version != before


def test_a_service_change_alone_keeps_the_version() -> None:
    # The agent never sees `service`, so changing it must not cause a push.
    check = {"id": "c", "kind": "icmp", "target": "198.18.1.1"}
    plain = inventory_from_mapping(_data(check)).agents["a1"].version
    with_service = inventory_from_mapping(_data({**check, "service": "web"})).agents["a1"].version
    assert plain == with_service


# -- bounds -------------------------------------------------------------------


def test_too_many_checks_for_one_agent() -> None:
    data = _data()
    data["agents"]["a1"]["checks"] = [{"id": "c", "kind": "icmp"}] * 100_001
    assert _problems(data) == ["agents.a1.checks: 100001 entries, at most 100000"]


def test_a_push_larger_than_one_grpc_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inventory_module, "MAX_PUSH_BYTES", 100)
    checks = [{"id": f"c{i}", "kind": "icmp", "target": "198.18.1.1"} for i in range(5)]
    (problem,) = _problems(_data(*checks))
    assert problem.startswith("agents.a1.checks: the pushed list is larger than one gRPC message")


def test_deep_nesting_and_non_string_keys_are_problems() -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    problems = _problems(_data({"id": "c", "kind": "x", "deep": deep, "m": {1: "a"}}, {2: "b"}))
    assert problems[0].startswith("agents.a1.checks[0].deep")
    assert "nested more than 32 levels deep" in problems[0]
    assert problems[1] == "agents.a1.checks[0].m: key 1 must be a string"
    assert "agents.a1.checks[1].2: a setting's name must be a string" in problems


def test_aliases_that_expand_hugely_are_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "Billion laughs": each level holds ten aliases of the one before, so the
    # ninth stands for 10**9 values while the file stays tiny. (The real bound,
    # 8 Mi values, stops this after about 4 s; a smaller one keeps the test fast.)
    monkeypatch.setattr(inventory_module, "MAX_CHECK_VALUES", 100_000)
    levels = ["x0: &x0 lol"]
    levels += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = _file(tmp_path, "      - id: c", "        kind: icmp", *(f"        {x}" for x in levels))
    assert path.stat().st_size < 2000
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    (problem,) = caught.value.problems
    assert problem.startswith("agents.a.checks[0].x")
    assert problem.endswith("more than 100000 values (do YAML aliases repeat a large block?)")


def test_aliases_come_out_expanded(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "      - {id: c1, kind: http, http: &std {expect_status: ['200']}}",
        "      - {id: c2, kind: http, http: *std}",
    )
    agent = load_inventory(path).agents["a"]
    assert "&" not in agent.checks_yaml
    assert "*" not in agent.checks_yaml
    assert agent.checks[0]["http"] is not agent.checks[1]["http"]


# -- the file -----------------------------------------------------------------


def test_file_problems_name_the_file(tmp_path: Path) -> None:
    cases = {
        "syntax.yaml": b"sites: [\n",
        "latin1.yaml": "sites: []\n# caf\xe9\n".encode("latin-1"),
        "big.yaml": b"#" * (16 * 1024 * 1024 + 1),
        "empty.yaml": b"",
    }
    expected = {
        "syntax.yaml": "not valid YAML",
        "latin1.yaml": "not UTF-8 text (byte 15)",
        "big.yaml": "larger than 16 MiB",
        "empty.yaml": "the top level must be a mapping",
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(InventoryError) as caught:
            load_inventory(path)
        assert str(caught.value).startswith(f"{path}: invalid inventory")
        assert expected[name] in str(caught.value)
    with pytest.raises(InventoryError, match="cannot read"):
        load_inventory(tmp_path / "missing.yaml")


def test_repeated_keys_are_problems_but_merge_overrides_are_not(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "      - &base {id: c1, kind: icmp, target: 198.18.0.2}",
        "      - {<<: *base, id: c2}",  # overrides the merged id: fine
        "  a:",
        "    checks: []",
    )
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert caught.value.problems == ("line 7: key 'a' appears twice",)


# -- the CLI ------------------------------------------------------------------


def test_cli_check_summarises_a_valid_inventory() -> None:
    result = CliRunner().invoke(main, ["inventory", "check", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{EXAMPLE}: 2 sites, 3 segments, 6 nodes, 3 services, 3 agents"
    version = load_inventory(EXAMPLE).agents["hv-fra-01"].version
    assert lines[1].split() == [
        "hv-fra-01",
        "4",
        "checks",
        "version",
        version,
        "(node",
        "hv-fra-01)",
    ]


def test_cli_check_lists_the_problems_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(_data({"id": "c", "kind": "icmp", "service": "nope"})))
    result = CliRunner().invoke(main, ["inventory", "check", str(path)])
    assert result.exit_code == 2
    assert f"{path}: invalid inventory" in result.output
    assert "agents.a1.checks[0].service: 'nope' is not a service of this inventory" in (
        result.output
    )
    missing = CliRunner().invoke(main, ["inventory", "check", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
    assert "cannot read" in missing.output


def _topology_data(**segment: Any) -> dict[str, Any]:
    """A hypervisor h with VM v, a server n, and whatever the segment is given."""
    data = _data()
    seg = data["sites"][0]["segments"][0]
    seg["nodes"] = [
        {"id": "h", "address": "198.18.1.3", "agent": "ha", "role": "hypervisor"},
        {"id": "v", "address": "198.18.1.4", "role": "vm", "parent": "h"},
        {"id": "n1", "address": "198.18.1.2", "agent": "a1", "customer_processes": ["app"]},
        {"id": "r", "address": "198.18.1.1", "role": "router"},
        {"id": "n6", "address": "2001:db8::6"},
    ]
    seg.update(segment)
    return data


def test_topology_keys_are_read() -> None:
    inventory = inventory_from_mapping(_topology_data(border="r", egress="r"))
    assert inventory.nodes["v"].parent == "h"
    assert inventory.nodes["h"].role == "hypervisor"
    assert inventory.nodes["n1"].role == "server"  # the default
    assert inventory.nodes["n1"].customer_processes == ("app",)
    assert (inventory.segments[0].border, inventory.segments[0].egress) == ("r", "r")


def test_topology_problems_name_their_fields() -> None:
    data = _topology_data(border="nowhere")
    nodes = data["sites"][0]["segments"][0]["nodes"]
    nodes[4]["role"] = "mainframe"
    nodes[1]["parent"] = "n1"  # a server, not a hypervisor
    nodes[2]["parent"] = "h"  # a server cannot run on a hypervisor
    nodes[3]["customer_processes"] = ["", 5]
    problems = _problems(data)
    roles = "hypervisor, server, vm, router, outside"
    assert f"sites[0].segments[0].nodes[4].role: 'mainframe' is not one of {roles}" in problems
    assert "sites[0].segments[0].border: 'nowhere' is not a node of this inventory" in problems
    assert any(
        p.startswith("sites[0].segments[0].nodes[1].parent: 'n1' is a server") for p in problems
    )
    assert "sites[0].segments[0].nodes[2].parent: only a VM (role: vm) runs on a hypervisor" in (
        problems
    )
    assert sum("customer_processes[" in p for p in problems) == 2
