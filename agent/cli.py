"""``slawatch-agent``: run the daemon, validate a config, or probe once by hand."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import click

from agent import __version__
from agent.config import load_config, parse_host_port, parse_ip
from agent.errors import AgentError


def _fail(message: str) -> None:
    click.echo(f"slawatch-agent: {message}", err=True)
    sys.exit(2)


@click.group()
@click.version_option(__version__, prog_name="slawatch-agent")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def main(log_level: str) -> None:
    """slawatch agent: measure reachability and loss, stream observations to the collector."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@main.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Agent YAML config.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds (default: run until SIGINT/SIGTERM).",
)
@click.option(
    "--collector",
    "collector_address",
    metavar="HOST:PORT",
    help="Override the collector address of the config.",
)
@click.option(
    "--summary-json",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a JSON summary of the run (packets, CPU, peak RSS) here at exit.",
)
def run(
    config_path: Path,
    duration: float | None,
    collector_address: str | None,
    summary_json: Path | None,
) -> None:
    """Run the agent daemon."""
    from agent.runner import run_agent

    try:
        config = load_config(config_path, collector_address)
        summary = asyncio.run(run_agent(config, duration))
    except AgentError as exc:
        _fail(str(exc))
        return
    text = json.dumps(summary.as_dict(), indent=2)
    if summary_json:
        summary_json.write_text(text + "\n")
    logging.getLogger("agent").info("stopped: %s", json.dumps(summary.as_dict()))


@main.command("check-config")
@click.argument("config_path", type=click.Path(dir_okay=False, path_type=Path))
def check_config(config_path: Path) -> None:
    """Validate a config file and list its checks."""
    try:
        config = load_config(config_path)
    except AgentError as exc:
        _fail(str(exc))
        return
    click.echo(f"{config_path}: valid, agent {config.agent_id}, {len(config.checks)} checks")
    for check in config.checks:
        click.echo(f"  {check.id}: {check.kind.value} {check.target} every {check.interval:g}s")


@main.group()
def probe() -> None:
    """Probe a target once from this node, without a collector."""


def _report(report_text: str, report_dict: dict[str, object], as_json: bool) -> None:
    click.echo(json.dumps(report_dict) if as_json else report_text)


_count = click.option(
    "--count",
    "-c",
    default=10,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Probes to send.",
)
_interval = click.option(
    "--interval",
    "-i",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 60),
    help="Seconds between probes.",
)
_timeout = click.option(
    "--timeout",
    "-W",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0, 60, min_open=True),
    help="Seconds to wait for each answer.",
)
_json = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@probe.command("icmp")
@click.argument("target")
@_count
@_interval
@_timeout
@_json
def probe_icmp_command(
    target: str, count: int, interval: float, timeout: float, as_json: bool
) -> None:
    """ICMP echo to TARGET (an IPv4 or IPv6 address)."""
    from agent.oneshot import probe_icmp

    try:
        parse_ip(target)
        report = asyncio.run(probe_icmp(target, count, interval, timeout))
    except (ValueError, AgentError) as exc:
        _fail(str(exc))
        return
    _report(report.as_text(), report.as_dict(), as_json)


@probe.command("tcp")
@click.argument("target", metavar="HOST:PORT")
@_count
@_interval
@_timeout
@_json
def probe_tcp_command(
    target: str, count: int, interval: float, timeout: float, as_json: bool
) -> None:
    """TCP connect to HOST:PORT (use [addr]:port for IPv6)."""
    from agent.oneshot import probe_tcp

    try:
        host, port = parse_host_port(target)
    except ValueError as exc:
        _fail(str(exc))
        return
    report = asyncio.run(probe_tcp(host, port, count, interval, timeout))
    _report(report.as_text(), report.as_dict(), as_json)
