"""The collector's inventory: sites, segments, nodes, service items, and the checks each agent runs.

The inventory is one YAML file the operator owns (format: docs/inventory.md).
It is validated by hand like the agent's config: every problem is listed with
its field path (``sites[0].segments[1].nodes[2].address: ...``) before
anything is used.

For every agent the inventory yields the document the collector pushes to it
(``ConfigPush.checks_yaml``: a YAML list in the agent config's ``checks:``
format) and its version. The collector checks only what it needs itself:
each check's ``id`` and ``kind``, the collector-only ``service:`` key, and the
``${node:ID}`` placeholders. All other keys go to the agent untouched; the
agent validates them with its own rules and acks or rejects the push, so the
two never carry two copies of the check rules that could drift apart.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import yaml

from collector.errors import InventoryError
from collector.fields import Fields
from collector.ingest.validate import ID_PATTERN, LABEL_KEY_PATTERN, MAX_LABEL_VALUE, MAX_LABELS
from collector.sla.model import (
    MaintenanceKind,
    MaintenanceScope,
    MaintenanceWindow,
    WindowSource,
    parse_kind,
)
from collector.times import parse_time_ns

try:  # libyaml: a 16 MiB file loads in seconds rather than a minute
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

__all__ = [
    "Address",
    "AgentChecks",
    "Inventory",
    "Node",
    "Segment",
    "Service",
    "Site",
    "inventory_from_mapping",
    "load_inventory",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_FILE_BYTES = 16 << 20
MAX_CHECKS = 100_000
MAX_ITEMS = 100_000  # sites, segments per site, nodes per segment, services
# A push travels in one gRPC message, and agents accept at most 4 MiB; leave
# room for the message around the document.
MAX_PUSH_BYTES = (4 << 20) - 4096
# The values all checks may hold together. A file of MAX_FILE_BYTES without
# YAML aliases holds fewer (every value takes at least two bytes), so only
# aliases that expand to far more than they take ("billion laughs") hit it.
MAX_CHECK_VALUES = MAX_FILE_BYTES // 2
MAX_DEPTH = 32
MAX_TEXT = 255

# ``$${`` is a literal ``${``; ``${...}`` a placeholder, possibly unterminated.
_PLACEHOLDER = re.compile(r"\$\$\{|\$\{([^}]*)(\}?)")
_NODE_FORMS = ("node", "node-host")
# The keys the collector reads itself; the agent gets all others as written.
_COLLECTOR_CHECK_KEYS = frozenset({"id", "kind", "service"})


NODE_ROLES = ("hypervisor", "server", "vm", "router", "outside")
MAX_PROCESSES = 64


@dataclass(frozen=True, slots=True)
class Node:
    """A machine: hypervisor, server, VM, router, or an outside vantage, with the agent
    running on it if any."""

    id: str
    address: Address
    agent: str | None
    labels: Mapping[str, str]
    site: str
    segment: str
    role: str = "server"  # one of NODE_ROLES
    # The hypervisor a VM runs on: its outage is the VM's.
    parent: str | None = None
    # Processes the customer runs on this node: one of them missing is the customer's doing.
    customer_processes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Segment:
    """A network segment of a site: nodes that share a path (attribution compares peers)."""

    id: str
    name: str | None
    site: str
    nodes: tuple[Node, ...]
    # The segment's border router and its egress hop (one past it), as node ids.
    border: str | None = None
    egress: str | None = None


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    name: str | None
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class Service:
    """A service item: the unit a contract is about."""

    id: str
    node: str
    owner: str
    contract: str  # a policy name; not resolved yet
    description: str | None = None


@dataclass(frozen=True, slots=True)
class AgentChecks:
    """What the collector pushes to one agent.

    ``checks`` are the pushed mappings (placeholders replaced, ``service``
    removed); ``checks_yaml`` is their canonical YAML, the text that is sent,
    and ``version`` the first 16 hex digits of its SHA-256.
    """

    agent_id: str
    node: str
    checks: tuple[Mapping[str, object], ...]
    version: str
    checks_yaml: str


@dataclass(frozen=True, slots=True)
class Inventory:
    source: str
    sites: tuple[Site, ...]
    nodes: Mapping[str, Node]  # in file order
    services: Mapping[str, Service]
    agents: Mapping[str, AgentChecks]  # every agent of a node, in node order
    # (agent id, check id) -> service id, for the checks that name a service.
    check_services: Mapping[tuple[str, str], str]
    # The ``maintenance:`` list (source inventory), in file order.
    maintenance: tuple[MaintenanceWindow, ...] = ()

    @property
    def segments(self) -> tuple[Segment, ...]:
        return tuple(segment for site in self.sites for segment in site.segments)


# ---------------------------------------------------------------------------
# Loading


def load_inventory(path: Path) -> Inventory:
    """Read and validate the inventory file; raise InventoryError listing every problem."""
    source = str(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InventoryError(source, [f"cannot read: {exc.strerror}"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise InventoryError(source, [f"larger than {MAX_FILE_BYTES >> 20} MiB"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InventoryError(source, [f"not UTF-8 text (byte {exc.start})"]) from None
    data, duplicates = _parse_yaml(text, source)
    return _build(data, source, duplicates)


def inventory_from_mapping(data: object, source: str = "inventory") -> Inventory:
    """Validate already parsed YAML; raise InventoryError listing every problem."""
    return _build(data, source, [])


class _Loader(_BaseLoader):
    """``yaml.safe_load`` that also notes repeated keys.

    Plain YAML keeps the last of two equal keys silently; in an inventory a
    repeated agent or node key would drop checks without a word.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            # Merge keys (<<) may legitimately be overridden; only explicit keys count.
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                line = key_node.start_mark.line + 1
                self.duplicates.append(f"line {line}: key {key_node.value!r} appears twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str, source: str) -> tuple[object, list[str]]:
    loader = _Loader(text)
    try:
        return loader.get_single_data(), loader.duplicates
    except yaml.YAMLError as exc:
        raise InventoryError(source, [f"not valid YAML: {exc}"]) from None
    except RecursionError:
        raise InventoryError(source, ["not valid YAML: nested too deeply"]) from None
    finally:
        loader.dispose()


# ---------------------------------------------------------------------------
# Validation


def _build(data: object, source: str, problems: list[str]) -> Inventory:
    if not isinstance(data, Mapping):
        raise InventoryError(source, [*problems, "the top level must be a mapping of settings"])
    f = Fields(data, "", frozenset({"sites", "services", "agents", "maintenance"}), problems)
    sites = tuple(_read_site(item, path, problems) for path, item in f.items("sites", MAX_ITEMS))
    nodes, agent_nodes = _index_nodes(sites, problems)
    _check_topology(sites, nodes, problems)
    services = _read_services(f, nodes, problems)
    agents, check_services = _read_agents(f, agent_nodes, nodes, services, problems)
    maintenance = _read_maintenance(f, _scope_ids(sites, services), problems)
    if problems:
        raise InventoryError(source, problems)
    return Inventory(
        source=source,
        sites=sites,
        nodes=MappingProxyType(nodes),
        services=MappingProxyType(services),
        agents=MappingProxyType(agents),
        check_services=MappingProxyType(check_services),
        maintenance=maintenance,
    )


def _read_site(data: object, path: str, problems: list[str]) -> Site:
    f = Fields(data, path, frozenset({"id", "name", "segments"}), problems)
    site_id = f.text("id", pattern=ID_PATTERN)
    segments = tuple(
        _read_segment(item, item_path, site_id, problems)
        for item_path, item in f.items("segments", MAX_ITEMS)
    )
    return Site(site_id, f.optional_text("name"), segments)


def _read_segment(data: object, path: str, site: str, problems: list[str]) -> Segment:
    f = Fields(data, path, frozenset({"id", "name", "nodes", "border", "egress"}), problems)
    segment_id = f.text("id", pattern=ID_PATTERN)
    nodes = tuple(
        _read_node(item, item_path, site, segment_id, problems)
        for item_path, item in f.items("nodes", MAX_ITEMS)
    )
    return Segment(
        segment_id,
        f.optional_text("name"),
        site,
        nodes,
        border=f.optional_text("border", pattern=ID_PATTERN),
        egress=f.optional_text("egress", pattern=ID_PATTERN),
    )


_NODE_KEYS = frozenset({"id", "address", "agent", "labels", "role", "parent", "customer_processes"})


def _read_node(data: object, path: str, site: str, segment: str, problems: list[str]) -> Node:
    f = Fields(data, path, _NODE_KEYS, problems)
    role = f.optional_text("role") or "server"
    if role not in NODE_ROLES:
        f.problem("role", f"{role!r} is not one of {', '.join(NODE_ROLES)}")
    return Node(
        id=f.text("id", pattern=ID_PATTERN),
        address=_read_address(f),
        agent=f.optional_text("agent", pattern=ID_PATTERN),
        labels=_read_labels(f),
        site=site,
        segment=segment,
        role=role,
        parent=f.optional_text("parent", pattern=ID_PATTERN),
        customer_processes=_read_names(f, "customer_processes"),
    )


def _read_names(f: Fields, key: str) -> tuple[str, ...]:
    """An optional list of process names (as psutil shows them: at most 255 characters)."""
    names: list[str] = []
    for path, item in f.items(key, MAX_PROCESSES):
        if isinstance(item, str) and 0 < len(item) <= MAX_TEXT:
            names.append(item)
        else:
            f.problems.append(f"{path}: must be a process name of 1 to {MAX_TEXT} characters")
    return tuple(names)


def _read_address(f: Fields) -> Address:
    text = f.text("address", max_length=64)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        if text:
            f.problem("address", f"{text!r} is not an IPv4 or IPv6 address")
        return ipaddress.IPv4Address(0)
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        # A zone names an interface of one host; other nodes cannot use it.
        f.problem("address", f"{text!r} has a zone (%...); give an address other nodes reach")
    return address


def _read_labels(f: Fields) -> Mapping[str, str]:
    data = f.raw("labels")
    if data is None:
        return MappingProxyType({})
    if not isinstance(data, Mapping):
        f.problem("labels", "must be a mapping of names to values")
        return MappingProxyType({})
    if len(data) > MAX_LABELS:
        f.problem("labels", f"{len(data)} labels, at most {MAX_LABELS}")
    labels: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not LABEL_KEY_PATTERN.match(key):
            f.problem("labels", f"{key!r} must match {LABEL_KEY_PATTERN.pattern}")
        elif not isinstance(value, str) or len(value) > MAX_LABEL_VALUE:
            f.problem(f"labels.{key}", f"must be a string of at most {MAX_LABEL_VALUE} characters")
        else:
            labels[key] = value
    return MappingProxyType(labels)


def _index_nodes(
    sites: tuple[Site, ...], problems: list[str]
) -> tuple[dict[str, Node], dict[str, str]]:
    """Nodes by id and node ids by agent id, noting ids used twice anywhere."""
    where: dict[tuple[str, str], str] = {}  # (kind, id) -> path of its first use
    nodes: dict[str, Node] = {}
    agent_nodes: dict[str, str] = {}
    for i, site in enumerate(sites):
        site_path = f"sites[{i}]"
        _note_unique(where, "site", site.id, site_path, problems)
        for j, segment in enumerate(site.segments):
            segment_path = f"{site_path}.segments[{j}]"
            _note_unique(where, "segment", segment.id, segment_path, problems)
            for k, node in enumerate(segment.nodes):
                node_path = f"{segment_path}.nodes[{k}]"
                if _note_unique(where, "node", node.id, node_path, problems):
                    nodes[node.id] = node
                if node.agent and _note_unique(where, "agent", node.agent, node_path, problems):
                    agent_nodes[node.agent] = node.id
    return nodes, agent_nodes


def _check_topology(
    sites: tuple[Site, ...], nodes: Mapping[str, Node], problems: list[str]
) -> None:
    """A parent is a hypervisor and only VMs have one (so parentage is one level, never
    a cycle); border and egress name nodes."""
    for i, site in enumerate(sites):
        for j, segment in enumerate(site.segments):
            path = f"sites[{i}].segments[{j}]"
            for key in ("border", "egress"):
                ref = getattr(segment, key)
                if ref and ref not in nodes:
                    problems.append(f"{path}.{key}: {ref!r} is not a node of this inventory")
            for k, node in enumerate(segment.nodes):
                parent = nodes.get(node.parent) if node.parent else None
                where = f"{path}.nodes[{k}].parent"
                if node.parent and parent is None:
                    problems.append(f"{where}: {node.parent!r} is not a node of this inventory")
                elif parent is not None and parent.role != "hypervisor":
                    problems.append(
                        f"{where}: {node.parent!r} is a {parent.role}; a parent must be a "
                        "hypervisor (role: hypervisor)"
                    )
                elif parent is not None and node.role != "vm":
                    problems.append(f"{where}: only a VM (role: vm) runs on a hypervisor")


def _note_unique(
    where: dict[tuple[str, str], str], kind: str, value: str, path: str, problems: list[str]
) -> bool:
    """Record the first use of an id; a repeat is a problem. False for a repeat or no id."""
    if not value:  # missing or invalid: already a problem of its own
        return False
    first = where.setdefault((kind, value), path)
    if first != path:
        field = "agent" if kind == "agent" else "id"
        problems.append(f"{path}.{field}: {kind} {value!r} is also at {first}")
        return False
    return True


def _read_services(f: Fields, nodes: Mapping[str, Node], problems: list[str]) -> dict[str, Service]:
    services: dict[str, Service] = {}
    where: dict[tuple[str, str], str] = {}
    for path, item in f.items("services", MAX_ITEMS):
        s = Fields(item, path, frozenset({"id", "node", "owner", "contract", "description"}),
                   problems)  # fmt: skip
        service = Service(
            id=s.text("id", pattern=ID_PATTERN),
            node=s.text("node", pattern=ID_PATTERN),
            owner=s.text("owner", max_length=MAX_TEXT),
            contract=s.text("contract", max_length=MAX_TEXT),
            description=s.optional_text("description", max_length=1024),
        )
        if service.node and service.node not in nodes:
            s.problem("node", f"{service.node!r} is not a node of this inventory")
        if _note_unique(where, "service", service.id, path, problems):
            services[service.id] = service
    return services


def _read_agents(
    f: Fields,
    agent_nodes: Mapping[str, str],
    nodes: Mapping[str, Node],
    services: Mapping[str, Service],
    problems: list[str],
) -> tuple[dict[str, AgentChecks], dict[tuple[str, str], str]]:
    """Every node's agent with its push; ``agents:`` entries must name such an agent."""
    entries = f.raw("agents")
    if not isinstance(entries, Mapping):
        if entries is not None:
            f.problem("agents", "must be a mapping of agent ids to their checks")
        entries = {}
    for agent_id in entries:
        if agent_id not in agent_nodes:
            problems.append(f"{f.at('agents')}.{agent_id}: no node has agent {agent_id!r}")
    expander = _Expander(nodes, services, problems)
    agents: dict[str, AgentChecks] = {}
    for agent_id, node_id in agent_nodes.items():
        path = f"{f.at('agents')}.{agent_id}"
        entry = Fields(entries.get(agent_id), path, frozenset({"checks"}), problems)
        items = entry.items("checks", MAX_CHECKS)
        checks = [expander.check(agent_id, item_path, item) for item_path, item in items]
        _note_duplicate_checks(checks, problems)
        pushed = [check.pushed for check in checks if check.pushed is not None]
        agents[agent_id] = _push(agent_id, node_id, pushed)
        if len(agents[agent_id].checks_yaml.encode()) > MAX_PUSH_BYTES:
            problems.append(
                f"{path}.checks: the pushed list is larger than one gRPC message "
                f"({MAX_PUSH_BYTES} bytes); split these checks over fewer targets or agents"
            )
    return agents, expander.check_services


def _note_duplicate_checks(checks: list[_Check], problems: list[str]) -> None:
    first: dict[str, str] = {}
    for check in checks:
        if check.id:
            seen = first.setdefault(check.id, check.path)
            if seen != check.path:
                problems.append(f"{check.path}.id: check id {check.id!r} is also at {seen}")


def _push(agent_id: str, node_id: str, checks: list[dict[str, object]]) -> AgentChecks:
    # Sorted keys make the text canonical: the same checks always give the
    # same text and so the same version, whatever order the file wrote keys in.
    text = yaml.safe_dump(checks, sort_keys=True, allow_unicode=True, default_flow_style=False)
    version = hashlib.sha256(text.encode()).hexdigest()[:16]
    frozen = tuple(MappingProxyType(check) for check in checks)
    return AgentChecks(agent_id, node_id, frozen, version, text)


# ---------------------------------------------------------------------------
# Maintenance windows


def _scope_ids(
    sites: tuple[Site, ...], services: Mapping[str, Service]
) -> dict[MaintenanceScope, set[str]]:
    """The ids a window of each scope may name."""
    segments = [segment for site in sites for segment in site.segments]
    return {
        MaintenanceScope.ITEM: set(services),
        MaintenanceScope.NODE: {node.id for segment in segments for node in segment.nodes},
        MaintenanceScope.SEGMENT: {segment.id for segment in segments},
        MaintenanceScope.SITE: {site.id for site in sites},
    }


def _read_maintenance(
    f: Fields, known: Mapping[MaintenanceScope, set[str]], problems: list[str]
) -> tuple[MaintenanceWindow, ...]:
    """The ``maintenance:`` list: windows of source inventory, each scope id a thing of
    this inventory (a service for scope item), no two with the same scope and span."""
    windows: list[MaintenanceWindow] = []
    first: dict[tuple[object, ...], str] = {}
    for path, item in f.items("maintenance", MAX_ITEMS):
        before = len(problems)
        w = Fields(item, path, _WINDOW_KEYS, problems)
        if not isinstance(item, Mapping):  # said so; its fields would only repeat it
            continue
        scope = _window_scope(w, known)
        start, end, announced = (_window_time(w, key) for key in ("start", "end", "announced"))
        if start is not None and end is not None and end <= start:
            w.problem("end", "must be after start")
        kind = _window_kind(w)
        note = w.optional_text("note", max_length=MAX_NOTE) or ""
        if scope is None or start is None or end is None or announced is None:
            continue
        if len(problems) > before:
            continue
        window = MaintenanceWindow(None, start, end, announced, kind, note, scope=scope[0],
                                   scope_id=scope[1], source=WindowSource.INVENTORY)  # fmt: skip
        key = (window.scope, window.scope_id, start, end)
        seen = first.setdefault(key, path)
        if seen != path:
            problems.append(f"{path}: the same scope, id, start and end as {seen}")
            continue
        windows.append(window)
    return tuple(windows)


_WINDOW_KEYS = frozenset({"scope", "id", "start", "end", "announced", "kind", "note"})
MAX_NOTE = 4096


def _window_scope(
    w: Fields, known: Mapping[MaintenanceScope, set[str]]
) -> tuple[MaintenanceScope, str | None] | None:
    names = tuple(scope.value for scope in MaintenanceScope)
    text = w.text("scope", max_length=16)
    if not text:
        return None
    if text not in names:
        w.problem("scope", f"{text!r} is not one of {', '.join(names)}")
        return None
    scope = MaintenanceScope(text)
    if scope is MaintenanceScope.ALL:
        if w.raw("id") is not None:
            w.problem("id", "scope all covers every service item: give no id")
        return scope, None
    scope_id = w.text("id", pattern=ID_PATTERN)
    if not scope_id:
        return None
    if scope_id not in known[scope]:
        thing = "service" if scope is MaintenanceScope.ITEM else str(scope)
        w.problem("id", f"{scope_id!r} is not a {thing} of this inventory")
        return None
    return scope, scope_id


def _window_time(w: Fields, key: str) -> int | None:
    value = w.raw(key)
    if value is None:
        w.problem(key, "required")
        return None
    try:
        return parse_time_ns(value)
    except ValueError as exc:
        w.problem(key, str(exc))
        return None


def _window_kind(w: Fields) -> MaintenanceKind:
    value = w.raw("kind")
    if value is None:
        w.problem("kind", "required")
        return MaintenanceKind.SCHEDULED
    try:
        return parse_kind(value)
    except ValueError as exc:
        w.problem("kind", str(exc))
        return MaintenanceKind.SCHEDULED


# ---------------------------------------------------------------------------
# Checks: the collector's keys, and the copy with placeholders replaced


class _Check(NamedTuple):
    path: str
    id: str  # "" when missing or invalid
    pushed: dict[str, object] | None  # None when the check has a problem


class _Expander:
    """Turns the checks of the file into the checks pushed, noting problems.

    Copies every value (so the push shares nothing with the file and YAML
    aliases come out expanded), replaces ``${node:ID}`` / ``${node-host:ID}``
    in strings, and counts the values against MAX_CHECK_VALUES.
    """

    def __init__(
        self, nodes: Mapping[str, Node], services: Mapping[str, Service], problems: list[str]
    ) -> None:
        self.nodes = nodes
        self.services = services
        self.problems = problems
        self.check_services: dict[tuple[str, str], str] = {}
        self.budget = MAX_CHECK_VALUES

    def check(self, agent_id: str, path: str, data: object) -> _Check:
        """The check read; its ``pushed`` is None when it has a problem of its own."""
        before = len(self.problems)
        if not isinstance(data, Mapping):
            self.problems.append(f"{path}: must be a mapping of settings")
            return _Check(path, "", None)
        f = Fields(data, path, frozenset(data), self.problems)  # every key passes to the agent
        for key in data:
            if not isinstance(key, str):
                f.problem(str(key), "a setting's name must be a string")
        check_id = f.text("id", pattern=ID_PATTERN)
        f.text("kind", max_length=64)
        service = f.optional_text("service", pattern=ID_PATTERN)
        if service and service not in self.services:
            f.problem("service", f"{service!r} is not a service of this inventory")
        pushed = {
            key: value if key in _COLLECTOR_CHECK_KEYS else self._copy(value, f.at(str(key)), 1)
            for key, value in data.items()
            if key != "service"
        }
        if len(self.problems) > before:
            return _Check(path, check_id, None)
        if service:
            self.check_services[(agent_id, check_id)] = service
        return _Check(path, check_id, pushed)

    def _copy(self, value: object, path: str, depth: int) -> object:
        self.budget -= 1
        if self.budget == 0:  # say it once, then copy on without recursion
            self.problems.append(
                f"{path}: the checks hold more than {MAX_CHECK_VALUES} values "
                "(do YAML aliases repeat a large block?)"
            )
        if self.budget <= 0:
            return None
        if isinstance(value, str):
            return self._substitute(value, path)
        if not isinstance(value, Mapping | list):
            return value
        if depth > MAX_DEPTH:
            self.problems.append(f"{path}: nested more than {MAX_DEPTH} levels deep")
            return None
        if isinstance(value, list):
            return [self._copy(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
        for key in value:
            if not isinstance(key, str):
                # The push is dumped with sorted keys, which needs strings; the
                # agent's config has no other kind of key anyway.
                self.problems.append(f"{path}: key {key!r} must be a string")
        return {str(k): self._copy(v, f"{path}.{k}", depth + 1) for k, v in value.items()}

    def _substitute(self, text: str, path: str) -> str:
        if "$" not in text:
            return text
        return _PLACEHOLDER.sub(lambda match: self._replacement(match, path), text)

    def _replacement(self, match: re.Match[str], path: str) -> str:
        if match[0] == "$${":
            return "${"
        inner, closed = match[1], match[2]
        form, _, node_id = inner.partition(":")
        if not closed or form not in _NODE_FORMS or not node_id:
            self.problems.append(
                f"{path}: {match[0]!r} is not a placeholder: write ${{node:NODE_ID}} or "
                "${node-host:NODE_ID} (and $${ for a literal ${)"
            )
            return match[0]
        node = self.nodes.get(node_id)
        if node is None:
            self.problems.append(f"{path}: {match[0]!r} names no node of this inventory")
            return match[0]
        address = node.address
        if address.version == 4 or form == "node":
            if address.version == 6 and _needs_brackets(match):
                self.problems.append(
                    f"{path}: {node_id!r} has an IPv6 address, which needs brackets in a URL "
                    f"or HOST:PORT: write ${{node-host:{node_id}}}"
                )
            return str(address)
        return f"[{address}]"


def _needs_brackets(match: re.Match[str]) -> bool:
    """Whether the placeholder sits where a URL's host or HOST:PORT's host goes."""
    before, after = match.string[: match.start()], match.string[match.end() :]
    return before.endswith(("//", "@")) or after.startswith(":")
