"""``slawatch-collector``: run the collector, or show what it has stored."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from collector import __version__
from collector.errors import CollectorError
from collector.ingest.validate import Limits
from collector.local_agent import start_local_agent, stop_local_agent
from collector.server import CollectorServer, CollectorSettings
from collector.sla.model import KIND_NAMES, Cause, MaintenanceScope
from collector.summary import check_summaries, format_table

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str) -> None:
    click.echo(f"slawatch-collector: {message}", err=True)
    sys.exit(2)


def _host_port(value: str, option: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise click.BadParameter(f"{value!r} is not HOST:PORT", param_hint=option)
    return host.strip("[]"), int(port)


def _duration_ns(value: str, option: str) -> int:
    from collector.attribution.listing import parse_duration_ns

    try:
        return parse_duration_ns(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _db_option(help_text: str, must_exist: bool = False) -> Callable[[F], F]:
    """``--db``: the same store, by default, for every command that uses one."""
    return click.option(
        "--db",
        "db_path",
        default="slawatch-data/collector.db",
        show_default=True,
        type=click.Path(dir_okay=False, exists=must_exist, path_type=Path),
        help=help_text,
    )


@click.group()
@click.version_option(__version__, prog_name="slawatch-collector")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def main(log_level: str) -> None:
    """slawatch collector: ingest observations, store them, export metrics."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@main.command()
@click.option(
    "--listen", default="127.0.0.1:4317", show_default=True, help="gRPC address agents connect to."
)
@_db_option("SQLite store.")
@click.option(
    "--metrics-listen",
    default="127.0.0.1:9108",
    show_default=True,
    help="Where /metrics is served for Prometheus.",
)
@click.option(
    "--max-check-series",
    default=5_000,
    show_default=True,
    type=click.IntRange(1, 10_000_000),
    help="Ceiling on checks exported as per-check series, all agents together.",
)
@click.option(
    "--max-check-series-per-agent",
    default=1_000,
    show_default=True,
    type=click.IntRange(1, 10_000_000),
    help="Bound on checks exported as per-check series, per agent (docs/metrics.md).",
)
@click.option(
    "--max-observation-age-days",
    default=40.0,
    show_default=True,
    type=click.FloatRange(0, 3650, min_open=True),
    help="Reject observations older than this.",
)
@click.option(
    "--summary-interval",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="Print a table of stored results every N seconds (0: never).",
)
@click.option(
    "--max-streams",
    default=10_000,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Agent streams open at once; more are refused (RESOURCE_EXHAUSTED).",
)
@click.option(
    "--tls-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="PKI folder from `pki init`: mTLS, each agent identified by its certificate.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Plaintext gRPC, agents not authenticated: for a lab or loopback only.",
)
@click.option(
    "--inventory",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Inventory YAML (docs/inventory.md): agents get their checks from it. "
    "Reloaded on SIGHUP and when the file changes.",
)
@click.option(
    "--attribution-interval",
    default=30.0,
    show_default=True,
    type=click.FloatRange(1, 86_400),
    help="Seconds between attribution runs (with --inventory).",
)
@click.option(
    "--attribution-lookback",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="How far back each attribution run looks (e.g. 30m, 6h, 2d); late data and "
    "open incidents reach further.",
)
@click.option(
    "--local-agent",
    "local_agent",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also run a slawatch-agent with this config, pointed at this collector.",
)
@click.option(
    "--duration",
    type=click.FloatRange(0, min_open=True),
    help="Stop after this many seconds (default: until SIGINT/SIGTERM).",
)
def run(
    listen: str,
    db_path: Path,
    metrics_listen: str,
    max_check_series: int,
    max_check_series_per_agent: int,
    max_observation_age_days: float,
    summary_interval: float,
    max_streams: int,
    tls_dir: Path | None,
    insecure: bool,
    inventory: Path | None,
    attribution_interval: float,
    attribution_lookback: str,
    local_agent: Path | None,
    duration: float | None,
) -> None:
    """Run the collector."""
    if (tls_dir is None) == (not insecure):
        raise click.UsageError("give --tls-dir (mTLS, the default way) or --insecure, not both")
    if insecure:
        click.echo(
            "WARNING: --insecure: plaintext gRPC, and any client may claim any agent id. "
            "Use it on loopback or in a lab only.",
            err=True,
        )
    _host_port(listen, "--listen")
    metrics_host, metrics_port = _host_port(metrics_listen, "--metrics-listen")
    lookback_ns = _duration_ns(attribution_lookback, "--attribution-lookback")
    settings = CollectorSettings(
        listen=listen,
        db_path=db_path,
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        limits=Limits(max_age_ns=int(max_observation_age_days * 86_400e9)),
        max_check_series=max_check_series,
        max_check_series_per_agent=max_check_series_per_agent,
        tls_dir=tls_dir,
        max_streams=max_streams,
        inventory=inventory,
        attribution_interval=attribution_interval,
        attribution_lookback_ns=lookback_ns,
    )
    try:
        asyncio.run(_serve(settings, summary_interval, local_agent, duration))
    except CollectorError as exc:
        _fail(str(exc))


async def _serve(
    settings: CollectorSettings,
    summary_interval: float,
    local_agent: Path | None,
    duration: float | None,
) -> None:
    server = CollectorServer(settings)
    await server.start()
    started_ns = time.time_ns()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, server.reload_inventory)
    host = settings.metrics_host
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"slawatch collector on {settings.listen}; store {settings.db_path}; "
        f"metrics at http://{shown}:{settings.metrics_port}/metrics"
    )
    agent = None
    summaries = None
    try:
        if local_agent is not None:
            agent = await start_local_agent(
                local_agent,
                f"127.0.0.1:{server.grpc_port}",
                settings.db_path.parent / "local-agent-spool",
            )
        if summary_interval > 0:
            summaries = asyncio.create_task(
                _print_summaries(settings.db_path, started_ns, summary_interval)
            )
        waits: set[asyncio.Task[object]] = {asyncio.create_task(stop.wait())}
        if agent is not None:
            waits.add(asyncio.create_task(agent.wait()))
        await asyncio.wait(waits, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        if agent is not None and agent.returncode is not None and not stop.is_set():
            click.echo(f"local agent exited with status {agent.returncode}", err=True)
    finally:
        if agent is not None:
            await stop_local_agent(agent)
        if summaries is not None:
            summaries.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await summaries
        await server.stop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
    if summary_interval > 0:
        click.echo("\nfinal:\n" + format_table(check_summaries(settings.db_path, started_ns)))
    if agent is not None and agent.returncode not in (0, -signal.SIGTERM):
        _fail(f"local agent failed (exit status {agent.returncode})")


async def _print_summaries(db_path: Path, since_ns: int, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        rows = await asyncio.to_thread(check_summaries, db_path, since_ns)
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        click.echo(f"\n[{stamp}] results since start\n{format_table(rows)}")


@main.group()
def pki() -> None:
    """A small built-in PKI: a CA, the collector's certificate, agents' certificates."""


_pki_dir = click.option(
    "--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="The PKI folder (created 0700).",
)  # fmt: skip
_days = click.option("--days", default=825, show_default=True, type=click.IntRange(1, 3650),
                     help="Validity of the certificate made.")  # fmt: skip


@pki.command("init")
@_pki_dir
@click.option("--name", "names", multiple=True, required=True,
              help="A name or address agents reach the collector by (repeatable).")  # fmt: skip
@_days
def pki_init(directory: Path, names: tuple[str, ...], days: int) -> None:
    """Make the CA and the collector's server certificate."""
    from collector import pki as pki_module

    try:
        pki_module.init(directory, list(names), days)
    except CollectorError as exc:
        _fail(str(exc))
    click.echo(f"CA and collector certificate for {', '.join(names)} in {directory}")


@pki.command("issue")
@click.argument("agent_id")
@_pki_dir
@_days
@click.option(
    "--renew-within",
    type=click.IntRange(0, 3650),
    metavar="DAYS",
    help="If AGENT_ID has a certificate: keep it if it is this CA's and valid for more "
    "than DAYS days (prints `unchanged`), else renew it (`renewed`; the old one is revoked "
    "as superseded and kept in agents/retired/). Without it, an existing certificate is "
    "an error.",
)
def pki_issue(agent_id: str, directory: Path, days: int, renew_within: int | None) -> None:
    """Make a client certificate for AGENT_ID (its common name is the agent's identity).

    Prints one line that starts with `issued`, `unchanged` or `renewed`."""
    from collector import pki as pki_module

    _check_agent_id(agent_id)
    if renew_within is not None and renew_within >= days:
        click.echo(
            f"slawatch-collector: warning: --renew-within {renew_within} is not below "
            f"--days {days}, so the new certificate will be renewed again on the next run",
            err=True,
        )
    try:
        done = pki_module.ensure_agent(directory, agent_id, days, renew_within)
    except CollectorError as exc:
        _fail(str(exc))
        return
    cert = done.certificate
    serial = pki_module.serial_hex(cert.serial_number)
    expires = f"{cert.not_valid_after_utc:%Y-%m-%d}"
    if done.action == "issued":
        click.echo(f"issued {done.issued.cert_path} (serial {serial}, expires {expires}; "
                   f"key {done.issued.key_path})")  # fmt: skip
    elif done.action == "unchanged":
        click.echo(f"unchanged {done.issued.cert_path} (serial {serial}, expires {expires}: "
                   f"more than {renew_within} days left)")  # fmt: skip
    else:
        assert done.old_serial is not None
        assert done.retired is not None
        old = pki_module.serial_hex(done.old_serial)
        what = (
            f"old serial {old} revoked as superseded"
            if done.old_revoked
            else f"old serial {old} was not this CA's, so not in the CRL"
        )
        click.echo(f"renewed {done.issued.cert_path} (serial {serial}, expires {expires}; "
                   f"{done.why}; {what}, kept in {done.retired.cert_path.parent})")  # fmt: skip


@pki.command("revoke")
@click.argument("agent_id")
@_pki_dir
@click.option(
    "--reason",
    default="unspecified",
    show_default=True,
    metavar="TEXT",
    help="Why. key-compromise, superseded, cessation-of-operation, affiliation-changed, "
    "privilege-withdrawn or ca-compromise go into the CRL as its reason code; any other "
    "text is kept beside the revoked files (the CRL says unspecified).",
)
def pki_revoke(agent_id: str, directory: Path, reason: str) -> None:
    """Revoke AGENT_ID's certificate: into DIR/crl.pem, its files to agents/revoked/.

    The collector refuses it from then on, and ends its open streams. Prints one line that
    starts with `revoked` or (revoked before) `unchanged`."""
    from collector import pki as pki_module

    _check_agent_id(agent_id)
    try:
        done = pki_module.revoke_agent(directory, agent_id, reason)
    except CollectorError as exc:
        _fail(str(exc))
        return
    serial = pki_module.serial_hex(done.serial)
    if done.action == "unchanged":
        click.echo(f"unchanged {agent_id}: revoked already (serial {serial}, {done.reason}); "
                   f"it has no current certificate")  # fmt: skip
        return
    assert done.moved_to is not None
    click.echo(f"revoked {agent_id} serial {serial} ({done.reason}); {done.crl_path} lists "
               f"{done.crl_entries}; files in {done.moved_to.cert_path.parent}")  # fmt: skip


@pki.command("list")
@_pki_dir
@click.option("--format", "output", default="table", show_default=True,
              type=click.Choice(["table", "json"]))  # fmt: skip
def pki_list(directory: Path, output: str) -> None:
    """Every agent certificate (current, retired, revoked): serial, expiry, state."""
    import json

    from collector import pki as pki_module

    try:
        certificates = pki_module.list_agents(directory)
    except CollectorError as exc:
        _fail(str(exc))
        return

    def stamp(value: dt.datetime | None) -> str | None:
        return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")

    rows = [
        {
            "agent_id": c.agent_id,
            "serial": pki_module.serial_hex(c.serial),
            "not_after": stamp(c.not_after),
            "state": c.state,
            "location": c.location,
            "path": str(c.path),
            "revoked_at": stamp(c.revoked_at),
            "reason": c.reason,
        }
        for c in certificates
    ]
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    columns = ("agent_id", "serial", "not_after", "state", "location", "reason")
    table = [[str(row[name] or "") for name in columns] for row in rows]
    widths = [
        max([len(name)] + [len(cells[i]) for cells in table]) for i, name in enumerate(columns)
    ]
    for cells in [list(columns), *table]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
        )


def _check_agent_id(agent_id: str) -> None:
    from collector.ingest.validate import ID_PATTERN

    if not ID_PATTERN.match(agent_id):
        _fail(f"agent id {agent_id!r} must match {ID_PATTERN.pattern}")


@main.command()
@_db_option("SQLite store.", must_exist=True)
@click.option("--since-minutes", default=60.0, show_default=True, type=click.FloatRange(0))
def summary(db_path: Path, since_minutes: float) -> None:
    """Print a table of stored results per check."""
    since_ns = time.time_ns() - int(since_minutes * 60e9) if since_minutes else 0
    try:
        click.echo(format_table(check_summaries(db_path, since_ns)))
    except CollectorError as exc:
        _fail(str(exc))


@main.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_db_option("SQLite store (created if missing).")
def import_file(file: Path, db_path: Path) -> None:
    """Import FILE (JSON Lines, docs/import-format.md) into the store: service items,
    observations, maintenance, tickets, overrides. Any problem imports nothing: exit 2
    listing every problem by line."""
    from collector.sla.importer import format_counts
    from collector.sla.importer import import_file as run_import

    try:
        counts = run_import(file, db_path)
    except CollectorError as exc:
        _fail(str(exc))
        return
    click.echo(f"{file}: imported into {db_path}\n{format_counts(counts)}")


def _policies_option(function: F) -> F:
    return click.option(
        "--policies",
        "policy_dirs",
        multiple=True,
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        help="A folder of your own policy files (*.yaml, docs/policies.md); repeatable.",
    )(function)


@main.command()
@click.option("--month", required=True, metavar="YYYY-MM", help="The calendar month.")
@click.option("--service-item", "item_id", help="Only this service item.")
@click.option("--format", "fmt", default="markdown", show_default=True,
              type=click.Choice(["json", "csv", "markdown"]))  # fmt: skip
@_db_option("SQLite store.", must_exist=True)
@_policies_option
def report(
    month: str, item_id: str | None, fmt: str, db_path: Path, policy_dirs: tuple[Path, ...]
) -> None:
    """Each service item's month under its policy: availability, downtime by cause,
    outages, credit (docs/report-format.md)."""
    from collector.sla.report import evaluate_from_store, render

    try:
        text = render(evaluate_from_store(db_path, month, item_id, policy_dirs), fmt)
        click.echo(text.rstrip("\n"))
    except CollectorError as exc:
        _fail(str(exc))


@main.command()
@click.option("--service-item", "item_id", required=True, help="The service item.")
@click.option("--month", required=True, metavar="YYYY-MM", help="The calendar month.")
@_db_option("SQLite store.", must_exist=True)
@_policies_option
def claim(item_id: str, month: str, db_path: Path, policy_dirs: tuple[Path, ...]) -> None:
    """The text of a credit request for one service item's month."""
    from collector.sla.report import claim_text, evaluate_from_store

    try:
        (item_month,) = evaluate_from_store(db_path, month, item_id, policy_dirs)
    except CollectorError as exc:
        _fail(str(exc))
        return
    click.echo(claim_text(item_month), nl=False)


@main.group()
def inventory() -> None:
    """The inventory file: sites, nodes, service items and each agent's checks."""


@inventory.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def inventory_check(file: Path) -> None:
    """Validate FILE and summarise it; exit 2 listing every problem."""
    from collector.inventory import load_inventory

    try:
        loaded = load_inventory(file)
    except CollectorError as exc:
        _fail(str(exc))
        return
    nodes = loaded.nodes.values()
    click.echo(
        f"{file}: {len(loaded.sites)} sites, {len(loaded.segments)} segments, "
        f"{len(nodes)} nodes, {len(loaded.services)} services, {len(loaded.agents)} agents"
    )
    width = max((len(agent_id) for agent_id in loaded.agents), default=0)
    for agent in loaded.agents.values():
        click.echo(
            f"  {agent.agent_id:<{width}}  {len(agent.checks):>6} checks  "
            f"version {agent.version}  (node {agent.node})"
        )


@main.command()
@_db_option("SQLite store.", must_exist=True)
@click.option(
    "--since",
    default="24h",
    show_default=True,
    metavar="WHEN",
    help="From when: ISO 8601 (UTC unless it says) or a time ago (90m, 6h, 7d).",
)
@click.option("--until", metavar="WHEN", help="Until when, the same way (default: now).")
@click.option(
    "--service-item",
    "item_id",
    help="Only incidents of this service item (its own fault or affected).",
)
@click.option(
    "--format", "fmt", default="table", show_default=True, type=click.Choice(["table", "json"])
)
@click.option(
    "--history",
    is_flag=True,
    help="Table: list every version of each incident (JSON always carries the history).",
)
@click.option("--withdrawn", is_flag=True,
              help="Also incidents that late data withdrew.")  # fmt: skip
def incidents(
    db_path: Path,
    since: str,
    until: str | None,
    item_id: str | None,
    fmt: str,
    history: bool,
    withdrawn: bool,
) -> None:
    """Outages and degraded spans attribution found, with cause, root, affected items,
    confidence and evidence (docs/incidents.md)."""
    from collector.attribution import listing

    now_ns = time.time_ns()
    try:
        start_ns = listing.parse_when(since, now_ns)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    try:
        end_ns = now_ns if until is None else listing.parse_when(until, now_ns)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--until") from None
    if end_ns <= start_ns:
        raise click.BadParameter(f"{until or 'now'} is not after --since {since}",
                                 param_hint="--until")  # fmt: skip
    try:
        found = listing.load(db_path, start_ns, end_ns, item_id, withdrawn)
    except CollectorError as exc:
        _fail(str(exc))
        return
    if fmt == "json":
        click.echo(listing.to_json(found, now_ns))
    else:
        click.echo(listing.to_table(found, now_ns, history), nl=False)


# -- maintenance windows and overrides (docs/maintenance.md) ----------------------------


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """An RFC 3339 time with its offset, or integer nanoseconds: as the import takes them."""
    if value is None:
        return None
    from collector.times import parse_time_ns

    text = value.strip()
    try:
        return parse_time_ns(int(text) if text.isdigit() else text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


_MAX_NOTE = 4096  # as the import format's notes and reasons


def _span_options(function: F) -> F:
    end = click.option("--end", "end_ns", required=True, metavar="TIME", callback=_instant,
                       help="End (not included), in the same form.")  # fmt: skip
    start = click.option("--start", "start_ns", required=True, metavar="TIME", callback=_instant,
                         help="Start: RFC 3339 with offset (2026-11-22T10:00:00Z).")  # fmt: skip
    return start(end(function))


def _check_span(start_ns: int, end_ns: int) -> None:
    if end_ns <= start_ns:
        raise click.BadParameter("must be after --start", param_hint="'--end'")


def _check_text(value: str, option: str, *, required: bool, max_length: int) -> None:
    if required and not value.strip():
        raise click.BadParameter("must not be empty", param_hint=f"'{option}'")
    if len(value) > max_length:
        raise click.BadParameter(
            f"{len(value)} characters, at most {max_length}", param_hint=f"'{option}'"
        )


def _check_id(value: str, option: str) -> None:
    from collector.ingest.validate import ID_PATTERN

    if not ID_PATTERN.match(value):
        raise click.BadParameter(
            f"{value!r} must match {ID_PATTERN.pattern}", param_hint=f"'{option}'"
        )


_inventory_check = click.option(
    "--inventory",
    "inventory_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Inventory YAML: the id must name something in it.",
)
_by = click.option("--by", default="", help="Who enters it (kept with it).")
_list_format = click.option("--format", "fmt", default="table", show_default=True,
                            type=click.Choice(["table", "json"]))  # fmt: skip


@main.group()
def maintenance() -> None:
    """Maintenance windows: announced work that policies may exclude (docs/maintenance.md)."""


@maintenance.command("add")
@click.option("--scope", required=True,
              type=click.Choice([scope.value for scope in MaintenanceScope]),
              help="What the window covers: a service item, a node (and the VMs on it), "
                   "a segment, a site, or every service item.")  # fmt: skip
@click.option("--id", "scope_id", help="The item, node, segment or site (not with --scope all).")
@_span_options
@click.option("--announced", "announced_ns", metavar="TIME", callback=_instant,
              help="When it was announced to customers.  [default: now]")  # fmt: skip
@click.option("--kind", default="scheduled", show_default=True,
              type=click.Choice(KIND_NAMES),
              help="planned is scheduled, time-critical-patch is patch.")  # fmt: skip
@click.option("--note", default="", help=f"Free text, at most {_MAX_NOTE} characters.")
@_by
@_inventory_check
@_db_option("SQLite store (created if missing).")
def maintenance_add(
    scope: str,
    scope_id: str | None,
    start_ns: int,
    end_ns: int,
    announced_ns: int | None,
    kind: str,
    note: str,
    by: str,
    inventory_path: Path | None,
    db_path: Path,
) -> None:
    """Add a maintenance window; print its id."""
    from collector.sla.model import MaintenanceKind, WindowSource
    from collector.sla.model import MaintenanceWindow as Window
    from collector.sla.operator import add_window

    if scope == "all" and scope_id is not None:
        raise click.BadParameter("--scope all covers every service item: give no --id",
                                 param_hint="'--id'")  # fmt: skip
    if scope != "all":
        if scope_id is None:
            raise click.BadParameter(f"required with --scope {scope}", param_hint="'--id'")
        _check_id(scope_id, "--id")
    _check_span(start_ns, end_ns)
    _check_text(note, "--note", required=False, max_length=_MAX_NOTE)
    _check_text(by, "--by", required=False, max_length=255)
    now = time.time_ns()
    if announced_ns is None:  # now, to the second: an announcement has no finer time
        announced_ns = now - now % 10**9
    window = Window(None, start_ns, end_ns, announced_ns,
                    MaintenanceKind(kind), note, scope=MaintenanceScope(scope), scope_id=scope_id,
                    source=WindowSource.CLI, created_ns=now, created_by=by)  # fmt: skip
    try:
        click.echo(add_window(db_path, window, inventory_path))
    except CollectorError as exc:
        _fail(str(exc))


@maintenance.command("list")
@click.option("--since", "since_ns", metavar="TIME", callback=_instant,
              help="Only windows that end after this time.")  # fmt: skip
@click.option("--all", "include_cancelled", is_flag=True, help="Cancelled windows too.")
@_list_format
@_db_option("SQLite store.", must_exist=True)
def maintenance_list(
    since_ns: int | None, include_cancelled: bool, fmt: str, db_path: Path
) -> None:
    """List maintenance windows by start (those in force unless --all)."""
    from collector.sla.operator import list_windows, render_windows

    try:
        click.echo(render_windows(list_windows(db_path, since_ns, include_cancelled), fmt))
    except CollectorError as exc:
        _fail(str(exc))


@maintenance.command("cancel")
@click.argument("window_id", metavar="ID", type=click.IntRange(1))
@_db_option("SQLite store.", must_exist=True)
def maintenance_cancel(window_id: int, db_path: Path) -> None:
    """Cancel window ID: it stays listed (--all) but no longer covers anything."""
    from collector.sla.operator import cancel_window

    try:
        window = cancel_window(db_path, window_id, time.time_ns())
    except CollectorError as exc:
        _fail(str(exc))
        return
    what = "every service item" if window.scope_id is None else f"{window.scope} {window.scope_id}"
    click.echo(f"cancelled maintenance window {window_id} ({what})")


@main.group()
def override() -> None:
    """Operators' verdicts on outages, kept beside the measured ones (docs/maintenance.md)."""


_item_required = click.option("--service-item", "item_id", required=True, help="The service item.")


@override.command("add")
@_item_required
@_span_options
@click.option("--cause", required=True,
              type=click.Choice([cause.value for cause in Cause]),
              help="What the outage is attributed to.")  # fmt: skip
@click.option("--reason", required=True, help="Why, in a sentence: reports show it.")
@_by
@_inventory_check
@_db_option("SQLite store (created if missing).")
def override_add(
    item_id: str,
    start_ns: int,
    end_ns: int,
    cause: str,
    reason: str,
    by: str,
    inventory_path: Path | None,
    db_path: Path,
) -> None:
    """Set the cause of ITEM's downtime in [START, END): the measured verdict stays."""
    from collector.sla.model import Override
    from collector.sla.operator import add_override

    _check_id(item_id, "--service-item")
    _check_span(start_ns, end_ns)
    _check_text(reason, "--reason", required=True, max_length=_MAX_NOTE)
    _check_text(by, "--by", required=False, max_length=255)
    entry = Override(item_id, start_ns, end_ns, Cause(cause), reason)
    try:
        add_override(db_path, entry, time.time_ns(), by, inventory_path)
    except CollectorError as exc:
        _fail(str(exc))
        return
    click.echo(f"override of {item_id} stored: {cause}")


@override.command("incident")
@click.argument("incident_id", metavar="INCIDENT")
@click.option("--cause", required=True,
              type=click.Choice([cause.value for cause in Cause]),
              help="What the incident is attributed to instead.")  # fmt: skip
@click.option("--reason", required=True, help="Why, in a sentence: reports show it.")
@_by
@_db_option("SQLite store.", must_exist=True)
def override_incident(incident_id: str, cause: str, reason: str, by: str, db_path: Path) -> None:
    """Set the cause of an ended INCIDENT (an id from `incidents`) for each of its service
    items over its span; the incident keeps its measured verdict beside it."""
    from collector.sla.operator import override_incident as override

    _check_text(reason, "--reason", required=True, max_length=_MAX_NOTE)
    _check_text(by, "--by", required=False, max_length=255)
    try:
        entries = override(db_path, incident_id, Cause(cause), reason, time.time_ns(), by)
    except CollectorError as exc:
        _fail(str(exc))
        return
    items = ", ".join(entry.item_id for entry in entries)
    click.echo(f"override of {incident_id} stored: {cause} for {items}")


@override.command("list")
@click.option("--service-item", "item_id", help="Only this service item's overrides.")
@_list_format
@_db_option("SQLite store.", must_exist=True)
def override_list(item_id: str | None, fmt: str, db_path: Path) -> None:
    """List overrides by service item and start."""
    from collector.sla.operator import list_overrides, render_overrides

    try:
        click.echo(render_overrides(list_overrides(db_path, item_id), fmt))
    except CollectorError as exc:
        _fail(str(exc))


@override.command("remove")
@_item_required
@_span_options
@_db_option("SQLite store.", must_exist=True)
def override_remove(item_id: str, start_ns: int, end_ns: int, db_path: Path) -> None:
    """Remove ITEM's override with exactly this start and end."""
    from collector.sla.operator import remove_override

    try:
        removed = remove_override(db_path, item_id, start_ns, end_ns)
    except CollectorError as exc:
        _fail(str(exc))
        return
    click.echo(f"override of {item_id} removed (it said {removed.override.cause.value})")
