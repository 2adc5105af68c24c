"""The path check: trace the path now and then, and report when it changes.

Each round runs ``slawatch-agent path TARGET --json`` as a child process (a
few rounds of Paris traceroute, docs/path.md): scapy, which the trace needs,
costs ~35 MB and would stay in the daemon for good; in a child it is gone
when the trace is. The observation carries the hops with their loss
intervals, the border and egress hops, and whether the path differs from the
previous trace of this check (the previous hops too, so the change is
evidence: old and new).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from agent.check_options import PathOptions
from agent.config import CheckConfig
from agent.observation import Observation
from agent.probes.base import WIRE_KIND, RoundClock
from slawatch.v1 import observation_pb2 as pb

# Seconds the child may take beyond the check's timeout before it is killed.
KILL_GRACE = 5.0


def agent_command() -> str:
    beside = Path(sys.executable).parent / "slawatch-agent"
    return str(beside) if beside.exists() else shutil.which("slawatch-agent") or "slawatch-agent"


def path_argv(check: CheckConfig, options: PathOptions) -> list[str]:
    argv = [
        agent_command(), "path", check.target, "--json", "--numeric",
        "--probe", options.probe, "--count", str(options.rounds), "--interval", "1",
        "--max-ttl", str(options.max_ttl), "--time-limit", f"{check.timeout:g}",
    ]  # fmt: skip
    for address in options.border:
        argv += ["--border", address]
    for prefix in options.provider_prefixes:
        argv += ["--provider-prefix", prefix]
    return argv


def hops_of(report: dict[str, Any]) -> list[str]:
    return [hop.get("address") or "" for hop in report.get("hops", [])]


def changed(previous: list[str] | None, current: list[str]) -> bool:
    """Different hops at a TTL where both traces had an answer, or a different length
    of the answered path; a hop silent in either trace is no evidence."""
    if previous is None:
        return False
    if _last_answer(previous) != _last_answer(current):
        return True
    return any(a and b and a != b for a, b in zip(previous, current, strict=False))


def _last_answer(hops: list[str]) -> int:
    return max((i for i, hop in enumerate(hops) if hop), default=-1)


def detail_of(report: dict[str, Any], previous: list[str] | None) -> pb.PathDetail:
    current = hops_of(report)
    detail = pb.PathDetail(reached=bool(report.get("reached")))
    rate_limited = set(report.get("rate_limited_ttls", []))
    for hop in report.get("hops", []):
        low, high = hop.get("loss_ci95") or (0.0, 1.0)
        detail.hops.add(
            ttl=hop["ttl"], address=hop.get("address") or "", sent=hop.get("sent", 0),
            received=hop.get("received", 0), loss_lower_ratio=low, loss_upper_ratio=high,
            rate_limited=hop["ttl"] in rate_limited,
        )  # fmt: skip
    if changed(previous, current):
        detail.changed = True
        detail.previous.extend(previous or [])
    detail.border_ttl = (report.get("border") or {}).get("ttl", 0)
    detail.egress_ttl = (report.get("egress") or {}).get("ttl", 0)
    detail.path_loss_ttl = (report.get("path_loss") or {}).get("start_ttl", 0)
    return detail


class PathProbe:
    def __init__(self, check: CheckConfig) -> None:
        self.check = check
        options = check.options
        self._options = options if isinstance(options, PathOptions) else PathOptions()
        # The previous trace's hops: a restart starts a new baseline.
        self._previous: list[str] | None = None

    async def run_round(self) -> Observation:
        clock = RoundClock()
        report, problem = await self._trace()
        observation = Observation(
            check_id=self.check.id,
            kind=WIRE_KIND[self.check.kind],
            target=self.check.target,
            start_unix_ns=clock.start_unix_ns,
            duration_ns=0,
            outcome=pb.OUTCOME_OK,
        )
        if report is None:
            observation.outcome = pb.OUTCOME_ERROR
            observation.error_class = pb.ERROR_CLASS_LOCAL_ERROR
            observation.error_detail = problem
        else:
            observation.detail = detail_of(report, self._previous)
            self._previous = hops_of(report)
            last = (report.get("hops") or [{}])[-1]
            observation.packets_sent = last.get("sent", 0)
            observation.packets_received = last.get("received", 0)
            if not report.get("reached"):
                observation.outcome = pb.OUTCOME_TIMEOUT
                observation.error_class = pb.ERROR_CLASS_ECHO_TIMEOUT
                observation.error_detail = f"the trace did not reach {self.check.target}"
        observation.duration_ns = clock.elapsed_ns()
        return observation

    async def _trace(self) -> tuple[dict[str, Any] | None, str]:
        process = await asyncio.create_subprocess_exec(
            *path_argv(self.check, self._options),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(self.check.timeout + KILL_GRACE):
                out, err = await process.communicate()
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            return None, err.decode(errors="replace").strip()[-200:] or "path trace failed"
        try:
            report: dict[str, Any] = json.loads(out)
        except ValueError:
            return None, "path trace printed no JSON report"
        return report, ""
