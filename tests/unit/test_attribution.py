"""The decision table on synthetic signals: each rule, its root, its interval, its evidence.

The lab test (tests/e2e/test_attribution_lab.py) proves the same on real agents;
these pin every rule at the unit seam, where time and signals are exact.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from collector.attribution.engine import attribute
from collector.attribution.model import (
    AttributionResult,
    Incident,
    IncidentKind,
    ItemState,
    RootScope,
    Topology,
    Vantage,
)
from collector.attribution.signals import CheckRounds, EgressRound, HostRound, Round, Signals
from collector.attribution.topology import topology_from_inventory
from collector.inventory import inventory_from_mapping
from collector.sla.model import Cause

S = 10**9
STEP = 2 * S
T0 = 1_800_000_000 * S  # the span starts here
SPAN = 300 * S
FAULT = (T0 + 100 * S, T0 + 160 * S)  # every fault below lasts this minute

INVENTORY = {
    "sites": [
        {
            "id": "lab",
            "segments": [
                {
                    "id": "edge",
                    "nodes": [
                        {"id": "border", "address": "198.18.0.1", "role": "router"},
                        {"id": "egress", "address": "198.18.0.2", "role": "router"},
                    ],
                },
                {
                    "id": "seg-a",
                    "border": "border",
                    "egress": "egress",
                    "nodes": [
                        {
                            "id": "hv1",
                            "address": "198.18.1.1",
                            "agent": "hv1",
                            "role": "hypervisor",
                        },
                        {"id": "vm1", "address": "198.18.1.9", "role": "vm", "parent": "hv1"},
                        {"id": "a2", "address": "198.18.1.2", "agent": "a2"},
                    ],
                },
                {
                    "id": "seg-b",
                    "border": "border",
                    "egress": "egress",
                    "nodes": [
                        {
                            "id": "srv",
                            "address": "198.18.2.1",
                            "agent": "srv",
                            "customer_processes": ["shopapp"],
                        },
                        {"id": "b2", "address": "198.18.2.2", "agent": "b2"},
                    ],
                },
            ],
        },
        {
            "id": "internet",
            "segments": [
                {
                    "id": "internet",
                    "nodes": [
                        {
                            "id": "out",
                            "address": "198.18.9.1",
                            "agent": "outside",
                            "role": "outside",
                        },
                    ],
                }
            ],
        },
    ],
    "services": [
        {"id": s, "node": n, "owner": "acme", "contract": "closte"}
        for s, n in [
            ("web", "srv"),
            ("srv-node", "srv"),
            ("b2-node", "b2"),
            ("hv1-node", "hv1"),
            ("a2-node", "a2"),
            ("vm1-node", "vm1"),
        ]
    ],
    "agents": {
        "outside": {
            "checks": [
                {"id": "web", "kind": "http", "service": "web"},
                *(
                    {"id": f"ping-{n}", "kind": "icmp", "service": f"{n}-node"}
                    for n in ("srv", "b2", "hv1", "a2", "vm1")
                ),
            ]
        },
        "srv": {
            "checks": [
                {"id": "web-local", "kind": "http", "service": "web"},
                {"id": "self", "kind": "icmp", "service": "srv-node"},
                {"id": "host", "kind": "host"},
                {"id": "egress", "kind": "egress_loss"},
            ]
        },
        "b2": {
            "checks": [
                {"id": "self", "kind": "icmp", "service": "b2-node"},
                {"id": "web-peer", "kind": "http", "service": "web"},
            ]
        },
        "hv1": {
            "checks": [
                {"id": "self", "kind": "icmp", "service": "hv1-node"},
                {"id": "vm1", "kind": "icmp", "service": "vm1-node"},
                {"id": "host", "kind": "host"},
            ]
        },
        "a2": {"checks": [{"id": "self", "kind": "icmp", "service": "a2-node"}]},
    },
}
TOPOLOGY = topology_from_inventory(inventory_from_mapping(INVENTORY))
KINDS = {"web": "http", "web-local": "http", "web-peer": "http", "host": "host",
         "egress": "egress_loss"}  # fmt: skip

Fails = Callable[[int], str | None]  # start -> error class of a failed round, None if ok


def _during(error: str, span: tuple[int, int] = FAULT) -> Fails:
    return lambda t: error if span[0] <= t < span[1] else None


class Lab:
    """Signals of the lab above: every check every 2 s, ok unless told otherwise."""

    def __init__(self) -> None:
        self.fails: dict[tuple[str, str], Fails] = {}
        self.silent: dict[str, tuple[int, int]] = {}
        self.late: dict[str, tuple[int, int]] = {}  # rounds in span arrive after it
        self.findings: dict[str, Callable[[int], tuple[tuple[str, str], ...]]] = {}
        self.egress: Callable[[int], tuple[str, float | None]] = lambda t: ("clear", 0.0)
        self.phases: dict[tuple[str, str], int] = {}  # a check's rounds this much later

    def fail(self, agent: str, check: str, fails: Fails) -> Lab:
        self.fails[(agent, check)] = fails
        return self

    def signals(self) -> Signals:
        checks: dict[tuple[str, str], CheckRounds] = {}
        host: dict[str, tuple[HostRound, ...]] = {}
        egress: dict[str, tuple[EgressRound, ...]] = {}
        for agent, entry in INVENTORY["agents"].items():  # type: ignore[attr-defined]
            for check in entry["checks"]:
                key = (agent, check["id"])
                phase = self.phases.get(key, 0)
                rounds = tuple(self._round(agent, key, t + phase) for t in self._starts(agent))
                checks[key] = CheckRounds(agent, check["id"], check["kind"], "t", STEP, rounds)
            host[agent] = tuple(
                HostRound(t, self.findings.get(agent, lambda _t: ())(t), 100.0)
                for t in self._starts(agent)
            )
            if agent == "srv":
                egress[agent] = tuple(self._egress(t) for t in self._starts(agent))
        coverage = {agent: self._coverage(agent) for agent in INVENTORY["agents"]}  # type: ignore[attr-defined]
        return Signals(checks, host, dict.fromkeys(host, STEP), egress, coverage)

    def _coverage(self, agent: str) -> tuple[tuple[int, int], ...]:
        """The agent ran throughout, but while silent (its batches' windows)."""
        begin, end = T0 - 60 * S, T0 + SPAN
        gap = self.silent.get(agent)
        return ((begin, gap[0]), (gap[1], end)) if gap else ((begin, end),)

    def _starts(self, agent: str) -> list[int]:
        gap = self.silent.get(agent, (0, 0))
        return [t for t in range(T0 - 60 * S, T0 + SPAN, STEP) if not gap[0] <= t < gap[1]]

    def _round(self, agent: str, key: tuple[str, str], t: int) -> Round:
        error = self.fails.get(key, lambda _t: None)(t)
        late = self.late.get(agent)
        received = late[1] + 5 * S if late and late[0] <= t < late[1] else t + 3 * S
        if error is None:
            return Round(t, S // 10, True, "ok", "none", received)
        return Round(t, S, False, "failed", error, received)

    def _egress(self, t: int) -> EgressRound:
        verdict, beyond = self.egress(t)
        lower = 0.02 if verdict == "excess" else 0.0
        return EgressRound(t, t + STEP, verdict, 0.01, lower, lower + 0.02, beyond,
                           None if beyond is None else beyond + 0.02, "198.18.0.2")  # fmt: skip

    def run(self) -> AttributionResult:
        return attribute(TOPOLOGY, self.signals(), T0, T0 + SPAN)


def _only(result: AttributionResult, kind: IncidentKind = IncidentKind.OUTAGE) -> Incident:
    found = [i for i in result.incidents if i.kind == kind]
    assert len(found) == 1, [(i.root, i.cause, i.start_ns - T0, i.end_ns - T0) for i in found]
    return found[0]


def _near_fault(incident: Incident, span: tuple[int, int] = FAULT) -> None:
    """The verdict's interval matches the fault's within one check interval."""
    assert abs(incident.start_ns - span[0]) <= STEP, (incident.start_ns - span[0]) / S
    assert abs(incident.end_ns - span[1]) <= STEP, (incident.end_ns - span[1]) / S


def test_topology_names_every_checks_vantage() -> None:
    web = {(c.agent_id, c.check_id): c.vantage for c in TOPOLOGY.items["web"].checks}
    assert web == {("outside", "web"): Vantage.OUTSIDE, ("srv", "web-local"): Vantage.LOCAL,
                   ("b2", "web-peer"): Vantage.PEER}  # fmt: skip
    vm = {(c.agent_id, c.check_id): c.vantage for c in TOPOLOGY.items["vm1-node"].checks}
    assert vm[("hv1", "vm1")] == Vantage.LOCAL  # the hypervisor is local to its VM


def test_steady_state_has_no_incident_and_every_item_up() -> None:
    result = Lab().run()
    assert result.incidents == ()
    assert set(result.states.values()) == {ItemState.UP}


def test_segment_cut_is_one_network_incident_with_every_item_affected() -> None:
    lab = Lab()
    for target in ("hv1", "a2", "vm1"):
        lab.fail("outside", f"ping-{target}", _during("echo_timeout"))
    lab.late = {"hv1": FAULT, "a2": FAULT}  # their results came by backfill
    incident = _only(lab.run())
    assert (incident.cause, incident.root.scope, incident.root.id) == (
        Cause.NETWORK, RootScope.SEGMENT, "seg-a")  # fmt: skip
    assert {a.item_id for a in incident.affected} == {"hv1-node", "a2-node", "vm1-node"}
    assert incident.items == ()
    _near_fault(incident)
    texts = " | ".join(e.text for e in incident.evidence)
    assert "every node of segment seg-a unreachable" in texts
    assert "arrived late (spool backfill)" in texts


def test_segment_cut_before_the_backfill_is_unknown_and_says_what_is_missing() -> None:
    lab = Lab()
    for target in ("hv1", "a2", "vm1"):
        lab.fail("outside", f"ping-{target}", _during("echo_timeout"))
    lab.silent = {"hv1": FAULT, "a2": FAULT}
    incident = _only(lab.run())
    assert (incident.cause, incident.root.id) == (Cause.UNKNOWN, "seg-a")
    assert incident.missing
    assert "spools arrive" in incident.missing[0]


def test_node_down_with_peers_reachable_is_host() -> None:
    lab = Lab()
    lab.fail("outside", "web", _during("connect_timeout"))
    lab.fail("outside", "ping-srv", _during("echo_timeout"))
    lab.fail("b2", "web-peer", _during("connect_timeout"))
    lab.silent = {"srv": FAULT}
    incident = _only(lab.run())
    assert (incident.cause, incident.root.scope, incident.root.id) == (
        Cause.HOST, RootScope.NODE, "srv")  # fmt: skip
    assert incident.items == ("srv-node", "web")
    _near_fault(incident)
    assert any("reachable (customer view) meanwhile: b2" in e.text for e in incident.evidence)


@pytest.mark.parametrize(
    ("findings", "cause"),
    [
        ((("process_missing", "nginx"),), Cause.SERVICE),  # the provider's web server
        ((("disk_full", "/srv"),), Cause.CUSTOMER),
        ((("process_missing", "shopapp"),), Cause.CUSTOMER),  # the customer's process
    ],
)
def test_web_server_down_on_a_healthy_node(
    findings: tuple[tuple[str, str], ...], cause: Cause
) -> None:
    lab = Lab()
    for agent, check in (("outside", "web"), ("srv", "web-local"), ("b2", "web-peer")):
        lab.fail(agent, check, _during("connect_refused"))
    lab.findings["srv"] = lambda t: findings if FAULT[0] <= t < FAULT[1] else ()
    incident = _only(lab.run())
    assert (incident.cause, incident.root.scope, incident.root.id) == (cause, RootScope.ITEM, "web")
    _near_fault(incident)
    local = next(e for e in incident.evidence if e.check_id == "web-local")
    assert local.vantage == "local"
    assert "connect_refused" in local.text
    assert any(e.signal == "host finding" and findings[0][0] in e.text for e in incident.evidence)


def test_hypervisor_down_takes_its_vm_as_affected_not_a_separate_fault() -> None:
    lab = Lab()
    lab.fail("outside", "ping-hv1", _during("echo_timeout"))
    lab.fail("outside", "ping-vm1", _during("echo_timeout"))
    lab.silent = {"hv1": FAULT}
    incident = _only(lab.run())
    assert (incident.cause, incident.root.id) == (Cause.HOST, "hv1")
    assert incident.items == ("hv1-node",)
    assert [(a.item_id, a.via) for a in incident.affected] == [("vm1-node", "hv1")]


def test_loss_toward_the_egress_hop_is_degraded_network_and_beyond_it_upstream() -> None:
    lab = Lab()
    lab.egress = lambda t: ("excess", 0.02) if FAULT[0] <= t < FAULT[1] else ("clear", 0.0)
    incident = _only(lab.run(), IncidentKind.DEGRADED)
    assert (incident.cause, incident.root.id) == (Cause.NETWORK, "border-egress")
    assert "srv-node" in incident.items + tuple(a.item_id for a in incident.affected)
    _near_fault(incident)

    lab.egress = lambda t: ("clear", 0.02) if FAULT[0] <= t < FAULT[1] else ("clear", 0.0)
    incident = _only(lab.run(), IncidentKind.DEGRADED)
    assert (incident.cause, incident.root.id) == (Cause.UPSTREAM, "beyond-egress")
    assert not [i for i in lab.run().incidents if i.kind == IncidentKind.OUTAGE]


def test_partitioned_agent_with_healthy_node_makes_no_incident() -> None:
    lab = Lab()
    lab.late = {"b2": FAULT}  # cut off from the collector only: results arrive later
    assert lab.run().incidents == ()


def test_maintenance_window_keeps_the_measured_cause_as_observed() -> None:
    lab = Lab()
    for agent, check in (("outside", "web"), ("srv", "web-local")):
        lab.fail(agent, check, _during("connect_refused"))
    signals = lab.signals()
    windows = {"web": ((FAULT[0] - 10 * S, FAULT[1] + 10 * S, "kernel update"),)}
    result = attribute(TOPOLOGY, Signals(signals.checks, signals.host, signals.host_interval_ns,
                                         signals.egress, {}, windows), T0, T0 + SPAN)  # fmt: skip
    incident = _only(result)
    assert (incident.cause, incident.observed_cause) == (Cause.MAINTENANCE, Cause.SERVICE)


def test_no_data_from_any_vantage_is_unknown_state_not_up() -> None:
    lab = Lab()
    lab.silent = {"outside": (T0 + 200 * S, T0 + SPAN)}
    result = lab.run()
    assert result.states["web"] == ItemState.UNKNOWN
    assert result.states["hv1-node"] == ItemState.UNKNOWN


def test_one_failed_round_is_not_an_outage_two_are() -> None:
    blip = (T0 + 100 * S, T0 + 102 * S)  # exactly one round
    assert Lab().fail("outside", "web", _during("connect_timeout", blip)).run().incidents == ()
    two = (T0 + 100 * S, T0 + 104 * S)
    incident = _only(Lab().fail("outside", "web", _during("connect_timeout", two)).run())
    _near_fault(incident, two)


def test_path_failure_with_loss_beyond_the_egress_hop_is_upstream() -> None:
    lab = Lab().fail("outside", "web", _during("connect_timeout"))
    lab.egress = lambda t: ("clear", 0.3) if FAULT[0] <= t < FAULT[1] else ("clear", 0.0)
    outage = _only(lab.run())
    assert (outage.cause, outage.root.id) == (Cause.UPSTREAM, "beyond-egress")
    assert any(e.signal == "egress loss" for e in outage.evidence)


def test_path_failure_with_the_node_fine_is_network() -> None:
    incident = _only(Lab().fail("outside", "web", _during("connect_timeout")).run())
    assert (incident.cause, incident.root.scope, incident.root.id) == (
        Cause.NETWORK, RootScope.ITEM, "web")  # fmt: skip


def test_inbound_flood_is_ddos() -> None:
    lab = Lab().fail("outside", "web", _during("connect_timeout"))
    signals = lab.signals()
    flooded = tuple(
        HostRound(r.start_ns, r.findings, 90_000.0 if FAULT[0] <= r.start_ns < FAULT[1] else 100.0)
        for r in signals.host["srv"]
    )
    host = {**signals.host, "srv": flooded}
    result = attribute(TOPOLOGY, Signals(signals.checks, host, signals.host_interval_ns,
                                         signals.egress), T0, T0 + SPAN)  # fmt: skip
    incident = _only(result)
    assert (incident.cause, incident.root.id) == (Cause.DDOS, "srv")
    assert any("90000 packets/s" in e.text for e in incident.evidence)


def test_a_vm_silent_on_its_own_hypervisor_is_unknown_not_a_guess() -> None:
    lab = Lab()
    lab.fail("outside", "ping-vm1", _during("echo_timeout"))
    lab.fail("hv1", "vm1", _during("echo_timeout"))
    incident = _only(lab.run())
    assert (incident.cause, incident.root.id) == (Cause.UNKNOWN, "vm1")
    assert "run state" in incident.missing[0]


def test_incident_edges_are_the_failed_rounds_not_the_slot_edges() -> None:
    lab = Lab().fail("outside", "web", _during("connect_timeout"))
    lab.fail("srv", "web-local", _during("connect_refused"))
    # Slots start 1.3 s off the rounds' rhythm: the edges must still be the rounds'.
    result = attribute(TOPOLOGY, lab.signals(), T0 - 13 * S // 10, T0 + SPAN)
    incident = _only(result)
    assert (incident.start_ns, incident.end_ns) == FAULT


def test_a_node_that_dies_mid_slot_is_host_from_its_first_failed_round() -> None:
    """Its last results in the slot it died in are no evidence the node still worked:
    no `network` sliver before the `host` verdict."""
    lab = Lab()
    died = (T0 + 101 * S, T0 + 160 * S)  # mid-round, mid-slot
    lab.fail("outside", "web", _during("connect_timeout", died))
    lab.fail("outside", "ping-srv", _during("echo_timeout", died))
    lab.silent = {"srv": died}
    result = attribute(TOPOLOGY, lab.signals(), T0 - 13 * S // 10, T0 + SPAN)
    incident = _only(result)
    assert (incident.cause, incident.root.id) == (Cause.HOST, "srv")
    assert incident.start_ns == T0 + 102 * S  # the first round that failed


@pytest.mark.parametrize("kind", [IncidentKind.OUTAGE, IncidentKind.DEGRADED])
def test_runs_on_shifted_grids_give_the_same_incident(kind: IncidentKind) -> None:
    """Each run cuts its own slots (from now - lookback); a settled incident must not
    move with them, or every run would store a new version of it."""
    lab = Lab().fail("outside", "web", _during("connect_timeout"))
    lab.fail("srv", "web-local", _during("connect_refused"))
    lab.egress = lambda t: ("excess", 0.0) if FAULT[0] <= t < FAULT[1] else ("clear", 0.0)
    signals = lab.signals()
    found = set()
    for shift_ms in (0, 300, 700, 1300, 1900):
        result = attribute(TOPOLOGY, signals, T0 - shift_ms * S // 1000, T0 + SPAN)
        incident = _only(result, kind)
        found.add((incident.start_ns, incident.end_ns, incident.open))
    assert len(found) == 1, found
    ((start, end, still_open),) = found
    assert not still_open
    assert (start, end) == FAULT


def test_nodes_of_a_cut_segment_noticed_a_round_apart_make_one_incident() -> None:
    """Each check has its own phase: a2's ping fails a round before hv1's does, and
    hv1's stays failed a round longer. Still one segment incident, no sliver of a2."""
    lab = Lab()
    early = (FAULT[0], FAULT[1] - 2 * S)
    late = (FAULT[0] + 2 * S, FAULT[1])
    lab.fail("outside", "ping-a2", _during("echo_timeout", early))
    lab.fail("outside", "ping-hv1", _during("echo_timeout", late))
    lab.fail("outside", "ping-vm1", _during("echo_timeout", late))
    incident = _only(lab.run())
    assert (incident.cause, incident.root.id) == (Cause.NETWORK, "seg-a")
    assert (incident.start_ns, incident.end_ns) == FAULT


def test_a_vm_noticed_a_round_before_its_hypervisor_is_affected_throughout() -> None:
    lab = Lab()
    lab.fail("outside", "ping-vm1", _during("echo_timeout"))
    lab.fail("outside", "ping-hv1", _during("echo_timeout", (FAULT[0] + 2 * S, FAULT[1])))
    lab.silent = {"hv1": (FAULT[0] + 2 * S, FAULT[1])}
    incident = _only(lab.run())
    assert (incident.cause, incident.root.id) == (Cause.HOST, "hv1")
    assert [a.item_id for a in incident.affected] == ["vm1-node"]


def test_an_undecided_window_inside_excess_loss_does_not_split_it() -> None:
    middle = T0 + 130 * S

    def windows(t: int) -> tuple[str, float | None]:
        if middle <= t < middle + 3 * STEP:
            return ("undecided", 0.0)  # too few echoes to tell, amid excess loss
        return ("excess", 0.0) if FAULT[0] <= t < FAULT[1] else ("clear", 0.0)

    lab = Lab()
    lab.egress = windows
    incident = _only(lab.run(), IncidentKind.DEGRADED)
    assert (incident.start_ns, incident.end_ns) == FAULT


@pytest.mark.parametrize(
    ("error", "cause"),
    [("connect_refused", Cause.SERVICE), ("connect_timeout", Cause.UNKNOWN)],
)
def test_without_a_local_check_a_node_that_answers_is_a_service_failure(
    error: str, cause: Cause
) -> None:
    """No local result to compare with: a refusal from the node itself still shows the
    path works (service); silence shows nothing (unknown, naming what is missing)."""
    lab = Lab().fail("outside", "web", _during(error))
    signals = lab.signals()
    checks = {k: v for k, v in signals.checks.items() if k != ("srv", "web-local")}
    without = Signals(checks, signals.host, signals.host_interval_ns, signals.egress,
                      signals.coverage)  # fmt: skip
    result = attribute(TOPOLOGY, without, T0, T0 + SPAN)
    incident = _only(result)
    assert (incident.cause, incident.root.id) == (cause, "web")
    assert incident.missing


def test_the_newest_slots_await_the_agents_results_rather_than_blame_the_host() -> None:
    """An outage still on at the end of the span, the node's agent alive but its newest
    batch not in yet: one open incident, no `host` sliver at the end."""
    lab = Lab().fail("outside", "ping-a2", _during("echo_timeout", (T0 + 200 * S, T0 + SPAN)))
    signals = lab.signals()
    coverage = {**signals.coverage, "a2": ((T0 - 60 * S, T0 + SPAN - 5 * S),)}
    trailing = Signals(signals.checks, signals.host, signals.host_interval_ns, signals.egress,
                       coverage)  # fmt: skip
    incident = _only(attribute(TOPOLOGY, trailing, T0, T0 + SPAN))
    assert incident.cause == Cause.NETWORK
    assert incident.open


def _without(service: str) -> Topology:
    """The lab's topology without one service item and the checks defining it."""
    data = copy.deepcopy(INVENTORY)
    data["services"] = [s for s in data["services"] if s["id"] != service]  # type: ignore[attr-defined]
    for entry in data["agents"].values():  # type: ignore[attr-defined]
        entry["checks"] = [c for c in entry["checks"] if c.get("service") != service]
    return topology_from_inventory(inventory_from_mapping(data))


def test_a_hypervisor_without_items_of_its_own_still_takes_its_vms_down() -> None:
    lab = Lab()
    lab.fail("outside", "ping-vm1", _during("echo_timeout"))
    lab.silent = {"hv1": FAULT}
    incident = _only(attribute(_without("hv1-node"), lab.signals(), T0, T0 + SPAN))
    assert (incident.cause, incident.root.id) == (Cause.HOST, "hv1")
    assert [a.item_id for a in incident.affected] == ["vm1-node"]


def test_a_node_down_gives_the_same_edges_on_every_grid_whatever_its_checks_phases() -> None:
    """srv's two items are checked at different phases; their last failed rounds end
    0.9 s apart. The incident must end at the later one on every slot grid."""
    lab = Lab()
    lab.phases = {("outside", "ping-srv"): 9 * S // 10}
    lab.fail("outside", "web", _during("connect_timeout"))
    lab.fail("outside", "ping-srv", _during("echo_timeout"))
    lab.silent = {"srv": FAULT}
    signals = lab.signals()
    edges = set()
    for shift_ms in (0, 300, 700, 1100, 1300, 1900):
        incident = _only(attribute(TOPOLOGY, signals, T0 - shift_ms * S // 1000, T0 + SPAN))
        assert incident.cause == Cause.HOST
        edges.add((incident.start_ns, incident.end_ns))
    assert edges == {(FAULT[0], FAULT[1] + 9 * S // 10)}, edges


def test_a_local_round_from_before_the_outage_does_not_make_a_network_sliver() -> None:
    """The local check runs 1.5 s after the outside one: for the outage's first slot its
    standing round is from before nginx stopped (ok). One `service` incident anyway."""
    lab = Lab()
    lab.phases = {("srv", "web-local"): 3 * S // 2}
    for agent, check in (("outside", "web"), ("srv", "web-local"), ("b2", "web-peer")):
        lab.fail(agent, check, _during("connect_refused"))
    for shift_ms in (0, 700, 1300):
        incident = _only(attribute(TOPOLOGY, lab.signals(), T0 - shift_ms * S // 1000, T0 + SPAN))
        assert (incident.cause, incident.root.id) == (Cause.SERVICE, "web")
        assert incident.start_ns == FAULT[0]
