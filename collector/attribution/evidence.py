"""What each signal behind a verdict showed over the incident's span, in words and
counts: which observations, from which vantages, which host findings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from collector.attribution.model import EvidenceLine, Root, Vantage
from collector.attribution.rules import Sign
from collector.attribution.situation import Situation

__all__ = ["render_evidence"]


def render_evidence(
    signs: list[Sign], s: Situation, start_ns: int, end_ns: int, root: Root
) -> tuple[EvidenceLine, ...]:
    lines: list[EvidenceLine] = []
    for sign in signs:
        render = _RENDERERS.get(sign.signal)
        line = render(sign.subject, s, start_ns, end_ns) if render else None
        if line is not None and line not in lines:
            lines.append(line)
    return tuple(lines)


def _check(subject: str, s: Situation, start_ns: int, end_ns: int) -> EvidenceLine | None:
    agent_id, _, check_id = subject.partition("/")
    check = s.signals.checks.get((agent_id, check_id))
    vantage = _vantage(s, agent_id, check_id)
    if check is None:
        return EvidenceLine("check", f"{subject}: no results", agent_id, check_id, vantage)
    rounds = [r for r in check.rounds if start_ns <= r.start_ns < end_ns]
    if not rounds:
        return EvidenceLine("check", f"{check.kind} {check.target} from {agent_id} ({vantage}): "
                            "no results in this span", agent_id, check_id, vantage)  # fmt: skip
    failed = [r for r in rounds if not r.ok]
    classes = Counter(r.error_class if r.error_class != "none" else r.outcome for r in failed)
    why = ", ".join(f"{name} x{count}" for name, count in classes.most_common())
    late_spans = s.late_spans.get(agent_id, set())
    late = sum(1 for r in rounds if (r.start_ns, r.start_ns + max(r.duration_ns, 1)) in late_spans)
    text = (
        f"{check.kind} {check.target} from {agent_id} ({vantage}): "
        f"{len(failed)} of {len(rounds)} rounds failed" + (f" ({why})" if why else "")
        + (f"; {late} arrived late (backfill)" if late else "")
    )  # fmt: skip
    return EvidenceLine("check", text, agent_id, check_id, vantage, len(rounds),
                        rounds[0].start_ns, rounds[-1].start_ns)  # fmt: skip


def _vantage(s: Situation, agent_id: str, check_id: str) -> str:
    for item in s.topology.items.values():
        for c in item.checks:
            if (c.agent_id, c.check_id) == (agent_id, check_id):
                return c.vantage.value
    return Vantage.LOCAL.value


def _agent(subject: str, s: Situation, start_ns: int, end_ns: int) -> EvidenceLine | None:
    if not subject:
        return EvidenceLine(
            "agent", "no agent runs on the node: no local results, no host findings"
        )
    slots = s.slots.covering(start_ns, end_ns)
    present = s.agent_present.get(subject, bytearray(s.slots.count))
    late = s.agent_late.get(subject, bytearray(s.slots.count))
    # Slots after the newest batch window it sent are not silence: not reported yet.
    reported_until = max((end for _, end in s.signals.coverage.get(subject, ())), default=None)
    known = [
        k for k in slots
        if reported_until is None or s.slots.start_of(k + 1) <= reported_until
    ]  # fmt: skip
    silent = sum(1 for k in known if not present[k])
    backfilled = sum(1 for k in slots if late[k])
    seconds = s.slots.step_ns / 1e9
    if not known:
        text = f"agent {subject} has not reported this span yet"
    elif silent == len(known):
        text = f"agent {subject} sent nothing for this span (none arrived later either)"
    elif silent:
        text = (
            f"agent {subject} silent for {silent * seconds:.0f} s of {len(known) * seconds:.0f} s"
        )
    else:
        text = f"agent {subject} ran throughout"
    if backfilled:
        text += f"; results for {backfilled * seconds:.0f} s of it arrived late (spool backfill)"
    return EvidenceLine("agent", text, subject)


def _findings(subject: str, s: Situation, start_ns: int, end_ns: int) -> EvidenceLine | None:
    agent_id = s.agent_of(subject)
    if agent_id is None:
        return None
    seen: dict[tuple[str, str], None] = {}
    per_slot = s.findings.get(agent_id, [])
    for k in s.slots.covering(start_ns, end_ns) if per_slot else ():
        seen.update(dict.fromkeys(per_slot[k]))
    rebooted = _reboot_after(s, agent_id, end_ns)
    if not seen and not rebooted:
        return EvidenceLine("host finding", f"host check on {subject}: no findings", agent_id)
    customer = set(s.customer_findings_any(subject, seen))
    parts = [
        f"{kind} {subject_}" + (" (customer's)" if (kind, subject_) in customer else "")
        for kind, subject_ in seen
    ]
    if rebooted:
        parts.append("rebooted when it came back")
    return EvidenceLine("host finding", f"host check on {subject}: " + "; ".join(parts), agent_id)


def _reboot_after(s: Situation, agent_id: str, end_ns: int) -> bool:
    """The node's first host round after the span reports a reboot (boot id changed)."""
    after = [r for r in s.signals.host.get(agent_id, ()) if r.start_ns >= end_ns]
    return bool(after) and any(kind == "rebooted" for kind, _ in after[0].findings)


def _peers(subject: str, s: Situation, start_ns: int, end_ns: int) -> EvidenceLine | None:
    return EvidenceLine(
        "peers", f"reachable (customer view) meanwhile: {subject.replace(',', ', ')}"
    )


def _segment(subject: str, s: Situation, start_ns: int, end_ns: int) -> EvidenceLine | None:
    nodes = s.independent_nodes(subject)
    vms = [vm for node in nodes for vm in s.topology.children(node)]
    text = f"every node of segment {subject} unreachable (customer view): " + ", ".join(nodes)
    return EvidenceLine(
        "segment", text + (f" (and the VMs on them: {', '.join(vms)})" if vms else "")
    )


def _parent(subject: str, s: Situation, start_ns: int, end_ns: int) -> EvidenceLine | None:
    return EvidenceLine("parent", f"runs on hypervisor {subject}, which was down")


def _egress(subject: str, s: Situation, start_ns: int, end_ns: int) -> EvidenceLine | None:
    rounds = [
        r for r in s.signals.egress.get(subject, ()) if r.end_ns > start_ns and r.start_ns < end_ns
    ]
    if not rounds:
        return None
    verdicts = Counter(r.verdict for r in rounds)
    worst = max(rounds, key=lambda r: r.loss_lower)
    text = (
        f"egress loss from {subject} toward {rounds[0].target}: "
        + ", ".join(f"{v} x{n}" for v, n in verdicts.most_common())
        + f"; worst window loss in [{worst.loss_lower:.2%}, {worst.loss_upper:.2%}]"
        f" against {worst.threshold * 100:g}%"
    )
    beyond = [r for r in rounds if r.beyond_lower is not None]
    if beyond:
        far = max(beyond, key=lambda r: r.beyond_lower or 0.0)
        text += f"; beyond the hop [{far.beyond_lower:.2%}, {far.beyond_upper:.2%}]"
    return EvidenceLine("egress loss", text, subject, observations=len(rounds),
                        first_ns=rounds[0].start_ns, last_ns=rounds[-1].start_ns)  # fmt: skip


def _flood(subject: str, s: Situation, start_ns: int, end_ns: int) -> EvidenceLine | None:
    agent_id = s.agent_of(subject)
    rounds = s.signals.host.get(agent_id or "", ())
    inside = [r.rx_packets_per_second for r in rounds if start_ns <= r.start_ns < end_ns]
    if not inside:
        return None
    return EvidenceLine("traffic", f"inbound up to {max(inside):.0f} packets/s on {subject}, "
                        "far above its baseline", agent_id or "")  # fmt: skip


_Renderer = Callable[[str, Situation, int, int], EvidenceLine | None]
_RENDERERS: dict[str, _Renderer] = {
    "check": _check,
    "agent": _agent,
    "findings": _findings,
    "peers": _peers,
    "segment": _segment,
    "parent": _parent,
    "egress": _egress,
    "flood": _flood,
}
