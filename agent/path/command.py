"""``slawatch-agent path``: the glue between the command line and a path run."""

from __future__ import annotations

import ipaddress
import json
import random
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from agent.path.hops import PathChange
from agent.path.names import ReverseNames
from agent.path.render import analyse, report_dict, table_text
from agent.path.session import PathRun, PathSettings, run_path
from agent.path.trace import DEFAULT_PORTS, Flow, source_address

_NAME_WAIT = 1.0  # seconds the final report waits for reverse names still being looked up
_CLEAR_DOWN = "\x1b[J"


@dataclass(frozen=True, slots=True)
class PathOptions:
    target: str
    probe: str
    count: int
    interval: float
    timeout: float
    max_ttl: int
    port: int | None
    flow_id: int | None
    borders: tuple[str, ...]
    prefixes: tuple[str, ...]
    time_limit: float | None
    numeric: bool
    as_json: bool


def resolve_target(target: str) -> str:
    """An IPv4 address for TARGET (an address, or a name with an IPv4 address)."""
    try:
        address = ipaddress.ip_address(target)
    except ValueError:
        try:
            infos = socket.getaddrinfo(target, None, socket.AF_INET)
        except socket.gaierror as exc:
            raise ValueError(f"{target}: cannot resolve to an IPv4 address ({exc})") from exc
        return str(infos[0][4][0])
    if address.version != 4:
        raise ValueError(f"{target}: path discovery is IPv4 only for now")
    return str(address)


def parse_borders(values: Sequence[str]) -> tuple[str, ...]:
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.IPv4Address(value)))
        except ValueError as exc:
            raise ValueError(f"--border {value}: not an IPv4 address") from exc
    return tuple(out)


def parse_prefixes(values: Sequence[str]) -> tuple[ipaddress.IPv4Network, ...]:
    out = []
    for value in values:
        try:
            out.append(ipaddress.IPv4Network(value, strict=False))
        except ValueError as exc:
            raise ValueError(f"--provider-prefix {value}: not an IPv4 prefix") from exc
    return tuple(out)


def build_settings(options: PathOptions) -> PathSettings:
    target = resolve_target(options.target)
    # One flow per run; a random one unless asked, so that repeated runs
    # sample the parallel paths a load balancer may spread flows over.
    flow_id = options.flow_id or random.randint(33000, 60999)
    port = options.port if options.port is not None else DEFAULT_PORTS[options.probe]
    flow = Flow(options.probe, source_address(target), target, flow_id, port)
    time_limit = options.time_limit or options.count * options.interval + options.timeout + 5
    return PathSettings(
        flow, options.count, options.interval, options.timeout, options.max_ttl, time_limit
    )


class _Display:
    """Redraws the table in place on a terminal; elsewhere prints nothing until the end."""

    def __init__(self, options: PathOptions, names: ReverseNames) -> None:
        self._options = options
        self._names = names
        self._borders = parse_borders(options.borders)
        self._prefixes = parse_prefixes(options.prefixes)
        self._live = sys.stdout.isatty() and not options.as_json
        self._drawn_lines = 0

    def on_round(self, run: PathRun, change: PathChange | None) -> None:
        for result in run.rounds[-1:]:
            for answer in result.answers.values():
                self._names.lookup(answer.address)
        # Path changes are lines under the live table; otherwise in the final report.
        if not self._live:
            return
        text = table_text(run, analyse(run, self._borders, self._prefixes), self._names, True)
        # Move up over the previous table and clear to the end: a redraw, not a scroll.
        up = f"\x1b[{self._drawn_lines}F" if self._drawn_lines else ""
        sys.stdout.write(f"{up}{_CLEAR_DOWN}{text}\n")
        sys.stdout.flush()
        self._drawn_lines = text.count("\n") + 1

    def finish(self, run: PathRun) -> str:
        self._names.wait(_NAME_WAIT)
        analysis = analyse(run, self._borders, self._prefixes)
        if self._options.as_json:
            return json.dumps(report_dict(run, analysis, self._names))
        text = table_text(run, analysis, self._names, live=False)
        up = f"\x1b[{self._drawn_lines}F{_CLEAR_DOWN}" if self._drawn_lines else ""
        return up + text


def path_main(options: PathOptions) -> str:
    """Run the trace and return what to print at the end.

    Raises ValueError (a bad argument) or ProbeSetupError (no raw sockets, no
    route) for what the user must fix."""
    settings = build_settings(options)
    display = _Display(options, ReverseNames(enabled=not options.numeric))
    return display.finish(run_path(settings, display.on_round))
