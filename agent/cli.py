"""``slawatch-agent``: run the daemon, validate a config, or probe once by hand."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Callable
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
@click.option(
    "--spool-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Override spool.dir of the config: where batches wait until the collector acks them.",
)
@click.option(
    "--audit-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append a line per observation as it is spooled (epoch, sequence, check, start ns): "
    "a local record to compare with what the collector stored.",
)
def run(
    config_path: Path,
    duration: float | None,
    collector_address: str | None,
    summary_json: Path | None,
    spool_dir: Path | None,
    audit_file: Path | None,
) -> None:
    """Run the agent daemon."""
    from agent.runner import run_agent

    for option, path in (("--summary-json", summary_json), ("--audit-file", audit_file)):
        if path is not None and not path.parent.is_dir():
            _fail(f"{option}: no folder {path.parent}")
    try:
        config = load_config(config_path, collector_address)
        if spool_dir is not None:
            config = dataclasses.replace(
                config, spool=dataclasses.replace(config.spool, dir=str(spool_dir))
            )
        with contextlib.ExitStack() as files:
            audit = files.enter_context(audit_file.open("a")) if audit_file else None
            summary = asyncio.run(run_agent(config, duration, audit))
    except OSError as exc:
        _fail(f"--audit-file: cannot write {exc.filename}: {exc.strerror}")
        return
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
    spool = config.spool
    click.echo(
        f"  spool {spool.dir}: at most {spool.max_bytes / 2**20:g} MiB, {spool.max_age / 3600:g} h"
    )
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


def _probe_check(check: dict[str, object], count: int, interval: float, as_json: bool) -> None:
    """Validate a check built from the command line like a config entry, then run it."""
    from agent.config import check_from_mapping
    from agent.oneshot import probe_rounds, rounds_report, rounds_text

    try:
        config = check_from_mapping({"id": "probe", "interval": 86_400} | check)
    except AgentError as exc:
        _fail(str(exc))
        return
    observations = asyncio.run(probe_rounds(config, count, interval))
    _report(rounds_text(config, observations), rounds_report(config, observations), as_json)


_tls_options = [
    click.option(
        "--ca-file",
        type=click.Path(dir_okay=False, exists=True),
        help="Verify the server certificate against this CA bundle.",
    ),
    click.option("--insecure", is_flag=True, help="Do not verify the server certificate."),
    click.option("--server-name", help="Name to verify the certificate against."),
]


def _with_tls_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_tls_options):
        command = option(command)
    return command


def _tls_block(ca_file: str | None, insecure: bool, server_name: str | None) -> dict[str, object]:
    block: dict[str, object] = {"verify": not insecure}
    if ca_file:
        block["ca_file"] = ca_file
    if server_name:
        block["server_name"] = server_name
    return block


_rounds = click.option(
    "--count",
    "-c",
    default=1,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Rounds to run.",
)


@probe.command("http")
@click.argument("url")
@click.option("--method", type=click.Choice(["HEAD", "GET"]), default="HEAD", show_default=True)
@click.option(
    "--expect",
    "expect_status",
    multiple=True,
    help="Status that counts as success: a class like 2xx or a code (repeatable; "
    "default 2xx and 3xx).",
)
@click.option("--host-header", help="Host header to send instead of the URL's host.")
@click.option("--follow", is_flag=True, help="Follow redirects (at most 5).")
@_with_tls_options
@_rounds
@_interval
@_timeout
@_json
def probe_http_command(
    url: str,
    method: str,
    expect_status: tuple[str, ...],
    host_header: str | None,
    follow: bool,
    ca_file: str | None,
    insecure: bool,
    server_name: str | None,
    count: int,
    interval: float,
    timeout: float,
    as_json: bool,
) -> None:
    """Fetch the status line and headers of URL (http:// or https://)."""
    http: dict[str, object] = {
        "method": method,
        "follow_redirects": follow,
        "tls": _tls_block(ca_file, insecure, server_name),
    }
    if expect_status:
        http["expect_status"] = list(expect_status)
    if host_header:
        http["host_header"] = host_header
    _probe_check(
        {"kind": "http", "target": url, "timeout": timeout, "http": http}, count, interval, as_json
    )


def _mail_command(kind: str, tls_flags: dict[str, str]) -> Callable[..., None]:
    def command(
        target: str,
        tls_mode: str,
        ehlo_name: str | None,
        ca_file: str | None,
        insecure: bool,
        server_name: str | None,
        count: int,
        interval: float,
        timeout: float,
        as_json: bool,
    ) -> None:
        options: dict[str, object] = {
            "tls_mode": tls_mode,
            "tls": _tls_block(ca_file, insecure, server_name),
        }
        if ehlo_name:
            options["ehlo_name"] = ehlo_name
        _probe_check(
            {"kind": kind, "target": target, "timeout": timeout, kind: options},
            count,
            interval,
            as_json,
        )

    command.__doc__ = f"Read the {kind.upper()} greeting of HOST:PORT, optionally upgrade to TLS."
    decorated: Callable[..., None] = command
    for option in reversed([
        click.argument("target", metavar="HOST:PORT"),
        click.option("--tls", "tls_mode", type=click.Choice(list(tls_flags)), default="none",
                     show_default=True, help=", ".join(f"{k}: {v}" for k, v in tls_flags.items())),
        click.option("--ehlo-name", help="Name to give in EHLO (SMTP)."),
        *_tls_options, _rounds, _interval, _timeout, _json,
    ]):  # fmt: skip
        decorated = option(decorated)
    return probe.command(kind)(decorated)


_mail_command(
    "smtp",
    {"none": "plain", "starttls": "EHLO then STARTTLS", "implicit": "TLS from the start (SMTPS)"},
)
_mail_command(
    "pop3", {"none": "plain", "starttls": "STLS", "implicit": "TLS from the start (POP3S)"}
)


@probe.command("egress-loss")
@click.argument("target", metavar="EGRESS_HOP")
@click.option(
    "--beyond", metavar="ADDR", help="An address past the egress hop (tells rate limiting)."
)
@click.option("--border", metavar="ADDR", help="The border router, probed alongside.")
@click.option("--threshold", default=0.01, show_default=True, type=click.FloatRange(0, 0.5),
              help="Loss ratio that counts as Excess Packet Loss.")  # fmt: skip
@click.option("--echoes", default=1000, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Echoes per window.")  # fmt: skip
@click.option("--spacing", default=0.01, show_default=True, type=click.FloatRange(0.001, 60),
              help="Seconds between echoes.")  # fmt: skip
@click.option("--windows", default=1, show_default=True, type=click.IntRange(1, 10_000),
              help="Windows to measure (undecided ones send more echoes next).")  # fmt: skip
@_timeout
@_json
def probe_egress_loss_command(
    target: str,
    beyond: str | None,
    border: str | None,
    threshold: float,
    echoes: int,
    spacing: float,
    windows: int,
    timeout: float,
    as_json: bool,
) -> None:
    """Decide Excess Packet Loss toward EGRESS_HOP (docs/packet-loss.md): each window's
    verdict is clear, undecided, excess or rate_limited."""
    options: dict[str, object] = {"threshold": threshold}
    options.update({k: v for k, v in (("beyond", beyond), ("border", border)) if v})
    window = (echoes - 1) * spacing + timeout
    _probe_check(
        {"kind": "egress_loss", "target": target, "packets": echoes, "spacing": spacing,
         "timeout": timeout, "interval": max(window / 0.9, 0.1) + 1, "egress_loss": options},
        windows, 0.0, as_json,
    )  # fmt: skip


@probe.command("dns")
@click.argument("server", metavar="SERVER")
@click.option("--name", required=True, help="Name to query.")
@click.option("--type", "record_type", default="A", show_default=True, help="Record type.")
@click.option("--expect", multiple=True, help="A value the answer must contain (repeatable).")
@click.option("--expect-rcode", default="NOERROR", show_default=True)
@click.option("--tcp", is_flag=True, help="Query over TCP instead of UDP.")
@_rounds
@_interval
@_timeout
@_json
def probe_dns_command(
    server: str,
    name: str,
    record_type: str,
    expect: tuple[str, ...],
    expect_rcode: str,
    tcp: bool,
    count: int,
    interval: float,
    timeout: float,
    as_json: bool,
) -> None:
    """Query SERVER (an address, or HOST:PORT) for NAME."""
    dns = {
        "name": name,
        "type": record_type.upper(),
        "expect": list(expect),
        "expect_rcode": expect_rcode.upper(),
        "tcp": tcp,
    }
    _probe_check(
        {"kind": "dns", "target": server, "timeout": timeout, "dns": dns}, count, interval, as_json
    )


@main.command("path")
@click.argument("target")
@click.option(
    "--probe",
    type=click.Choice(["icmp", "udp", "tcp"]),
    default="icmp",
    show_default=True,
    help="Probe type: ICMP echo, UDP to a closed port, or TCP SYN.",
)
@click.option(
    "--count",
    "-c",
    default=10,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Rounds: each probes every TTL up to the target once.",
)
@click.option(
    "--interval",
    "-i",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.01, 60),
    help="Seconds between the starts of rounds.",
)
@_timeout
@click.option("--max-ttl", default=30, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="UDP/TCP destination port (default 33434 for UDP, 80 for TCP).",
)
@click.option(
    "--flow-id",
    type=click.IntRange(1, 65535),
    help="The flow: UDP/TCP source port or ICMP identifier (default random). "
    "Constant for the whole run, so every probe follows one ECMP path.",
)
@click.option(
    "--border",
    "borders",
    multiple=True,
    metavar="ADDR",
    help="An address of the border router (repeatable): its hop is the border, "
    "the next the egress hop.",
)
@click.option(
    "--provider-prefix",
    "prefixes",
    multiple=True,
    metavar="CIDR",
    help="A prefix of the provider's own network (repeatable): the last hop inside is "
    "the border, the next the egress hop.",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(0, 86_400, min_open=True),
    help="Stop after this many seconds (default: count x interval + timeout + 5).",
)
@click.option("--numeric", "-n", is_flag=True, help="Do not look up reverse names.")
@_json
def path_command(
    target: str,
    probe: str,
    count: int,
    interval: float,
    timeout: float,
    max_ttl: int,
    port: int | None,
    flow_id: int | None,
    borders: tuple[str, ...],
    prefixes: tuple[str, ...],
    time_limit: float | None,
    numeric: bool,
    as_json: bool,
) -> None:
    """Trace the path to TARGET (IPv4) with a constant flow (Paris traceroute),
    COUNT rounds, with per-hop loss and RTT, like mtr."""
    # Imported here: the path modules bring in scapy when a trace runs.
    from agent.path.command import PathOptions, path_main

    options = PathOptions(
        target, probe, count, interval, timeout, max_ttl, port, flow_id,
        borders, prefixes, time_limit, numeric, as_json,
    )  # fmt: skip
    try:
        text = path_main(options)
    except (ValueError, AgentError) as exc:
        _fail(str(exc))
        return
    click.echo(text)
