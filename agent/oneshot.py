"""A network engineer's one-shot probes: no collector, just numbers on the terminal."""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

from agent.config import CheckConfig, CheckKind
from agent.net.icmp_engine import IcmpEngine
from agent.observation import Observation
from agent.probes import build_probe
from agent.probes.tcp import connect_once
from agent.stats import percentile, wilson_interval
from slawatch.v1 import observation_pb2 as pb


@dataclass(slots=True)
class OneShotReport:
    kind: str
    target: str
    sent: int
    received: int
    rtts_ns: list[int]
    # How each probe ended (ok, timeout, refused ...), for kinds that say so.
    outcomes: Counter[str] = field(default_factory=Counter)
    # Distinct error texts, so "error 1" never stands alone.
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        lost = self.sent - self.received
        low, high = wilson_interval(lost, self.sent)
        report: dict[str, Any] = {
            "kind": self.kind,
            "target": self.target,
            "sent": self.sent,
            "received": self.received,
            "loss_ratio": lost / self.sent if self.sent else None,
            "loss_percent": round(100 * lost / self.sent, 4) if self.sent else None,
            "loss_ci95": [round(low, 6), round(high, 6)],
            "rtt_ms": _rtt_ms(sorted(self.rtts_ns)),
        }
        if self.outcomes:
            report["outcomes"] = dict(self.outcomes)
        if self.errors:
            report["errors"] = self.errors
        return report

    def as_text(self) -> str:
        d = self.as_dict()
        low, high = d["loss_ci95"]
        loss = f"{d['loss_percent']:.2f}%" if d["loss_percent"] is not None else "n/a"
        lines = [
            f"{self.kind} {self.target}: {self.sent} sent, {self.received} received, "
            f"{loss} loss (95% interval {100 * low:.2f}% - {100 * high:.2f}%)"
        ]
        rtt = d["rtt_ms"]
        if rtt:
            lines.append(
                "rtt min/mean/p50/p99/max = "
                + "/".join(f"{rtt[k]:.3f}" for k in ("min", "mean", "p50", "p99", "max"))
                + " ms"
            )
        if self.outcomes:
            lines.append("outcomes: " + ", ".join(f"{k} {v}" for k, v in self.outcomes.items()))
        lines.extend(f"error: {error}" for error in self.errors)
        return "\n".join(lines)


def _rtt_ms(sorted_ns: list[int]) -> dict[str, float] | None:
    if not sorted_ns:
        return None
    return {
        "min": sorted_ns[0] / 1e6,
        "mean": sum(sorted_ns) / len(sorted_ns) / 1e6,
        "p50": percentile(sorted_ns, 50) / 1e6,
        "p99": percentile(sorted_ns, 99) / 1e6,
        "max": sorted_ns[-1] / 1e6,
    }


async def probe_icmp(target: str, count: int, interval: float, timeout: float) -> OneShotReport:
    destination = str(ipaddress.ip_address(target))
    engine = IcmpEngine()
    try:
        result = await engine.ping(destination, count, interval, timeout)
    finally:
        engine.close()
    outcomes: Counter[str] = Counter()
    if result.received:
        outcomes["ok"] = result.received
    for reason, n in result.unreachable.items():
        outcomes[f"unreachable_{reason.name.lower()}"] += n
    unanswered = result.sent - result.received - sum(result.unreachable.values())
    if unanswered:
        outcomes["timeout"] = unanswered
    if result.local_errors:
        outcomes["local_error"] = len(result.local_errors)
    errors = sorted(set(result.local_errors))[:5]
    return OneShotReport(
        "icmp", target, result.sent, result.received, result.rtts_ns, outcomes, errors
    )


async def probe_tcp(
    host: str, port: int, count: int, interval: float, timeout: float
) -> OneShotReport:
    rtts: list[int] = []
    outcomes: Counter[str] = Counter()
    errors: list[str] = []
    for index in range(count):
        if index:
            await asyncio.sleep(interval)
        attempt = await connect_once(host, port, timeout)
        outcomes[pb.Outcome.Name(attempt.outcome).removeprefix("OUTCOME_").lower()] += 1
        if attempt.outcome == pb.OUTCOME_OK:
            rtts.append(attempt.rtt_ns)
        elif attempt.detail not in errors and len(errors) < 5:
            errors.append(attempt.detail)
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return OneShotReport("tcp", shown, count, len(rtts), rtts, outcomes, errors)


async def probe_rounds(check: CheckConfig, count: int, interval: float) -> list[Observation]:
    """Run ``count`` rounds of a check, ``interval`` seconds apart, without a collector."""
    engine = IcmpEngine() if check.kind in (CheckKind.ICMP, CheckKind.EGRESS_LOSS) else None
    try:
        probe = build_probe(check, engine)
        observations = []
        for index in range(count):
            if index:
                await asyncio.sleep(interval)
            observations.append(await probe.run_round())
    finally:
        if engine is not None:
            engine.close()
    return observations


def round_as_dict(observation: Observation) -> dict[str, Any]:
    result: dict[str, Any] = {
        "outcome": pb.Outcome.Name(observation.outcome).removeprefix("OUTCOME_").lower(),
        "error_class": pb.ErrorClass.Name(observation.error_class)
        .removeprefix("ERROR_CLASS_")
        .lower(),
        "error_detail": observation.error_detail,
        "duration_ms": observation.duration_ns / 1e6,
        "packets_sent": observation.packets_sent,
        "packets_received": observation.packets_received,
        "connect_ms": observation.rtt_samples_ns[0] / 1e6 if observation.rtt_samples_ns else None,
    }
    if observation.detail is not None:
        result["detail"] = json_format.MessageToDict(
            observation.detail, preserving_proto_field_name=True
        )
    return result


def rounds_report(check: CheckConfig, observations: list[Observation]) -> dict[str, Any]:
    return {
        "kind": check.kind.value,
        "target": check.target,
        "rounds": len(observations),
        "ok": sum(o.outcome == pb.OUTCOME_OK for o in observations),
        "results": [round_as_dict(o) for o in observations],
    }


def rounds_text(check: CheckConfig, observations: list[Observation]) -> str:
    lines = []
    for observation in observations:
        r = round_as_dict(observation)
        why = f" ({r['error_class']}: {r['error_detail']})" if r["error_class"] != "none" else ""
        facts = ", ".join(f"{k}={v}" for k, v in _flatten(r.get("detail", {})))
        lines.append(
            f"{check.kind} {check.target}: {r['outcome']}{why} in {r['duration_ms']:.1f} ms"
            + (f"; {facts}" if facts else "")
        )
    return "\n".join(lines)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            items.extend(_flatten(value, f"{prefix}{key}."))
        else:
            items.append((f"{prefix}{key}", value))
    return items
