"""The topology attribution reasons over, built from the inventory: nodes with role and
parent, segments with their border router and egress hop, and every service item's
checks with the vantage each runs from."""

from __future__ import annotations

from collector.attribution.model import (
    CheckRef,
    NodeRole,
    TopoItem,
    Topology,
    TopoNode,
    TopoSegment,
    Vantage,
)
from collector.inventory import Inventory
from collector.sla.model import ItemPlace

__all__ = ["item_place", "topology_from_inventory", "vantage_of"]


def topology_from_inventory(inventory: Inventory) -> Topology:
    nodes = {
        node.id: TopoNode(
            id=node.id,
            role=NodeRole(node.role),
            site=node.site,
            segment=node.segment,
            agent=node.agent,
            parent=node.parent,
            customer_processes=node.customer_processes,
        )
        for node in inventory.nodes.values()
    }
    segments = {
        segment.id: TopoSegment(
            id=segment.id,
            site=segment.site,
            nodes=tuple(node.id for node in segment.nodes),
            border=segment.border,
            egress=segment.egress,
        )
        for segment in inventory.segments
    }
    agent_nodes = {node.agent: node.id for node in inventory.nodes.values() if node.agent}
    checks: dict[str, list[CheckRef]] = {service_id: [] for service_id in inventory.services}
    for (agent_id, check_id), service_id in sorted(inventory.check_services.items()):
        service = inventory.services[service_id]
        vantage = vantage_of(nodes[agent_nodes[agent_id]], nodes[service.node])
        checks[service_id].append(CheckRef(agent_id, check_id, vantage))
    items = {
        service.id: TopoItem(service.id, service.node, service.owner, tuple(checks[service.id]))
        for service in inventory.services.values()
    }
    return Topology(nodes=nodes, segments=segments, items=items, agent_nodes=agent_nodes)


def vantage_of(runs_on: TopoNode, target: TopoNode) -> Vantage:
    """Where a check running on ``runs_on`` sees ``target`` from.

    The hypervisor of a VM is local to it: its view does not cross the segment.
    """
    if runs_on.id in (target.id, target.parent):
        return Vantage.LOCAL
    if runs_on.role == NodeRole.OUTSIDE:
        return Vantage.OUTSIDE
    if runs_on.segment == target.segment:
        return Vantage.PEER
    return Vantage.SITE


def item_place(topology: Topology, item_id: str) -> ItemPlace:
    """Where the item runs, for maintenance scopes: its node (and a VM's hypervisor), and
    the segment and site of the physical node."""
    node = topology.nodes[topology.items[item_id].node]
    physical = topology.nodes.get(node.parent or "", node)
    nodes = (node.id, physical.id) if physical is not node else (node.id,)
    return ItemPlace(item_id, nodes, physical.segment, physical.site)
