"""From an import file (and agents' batches) through the store to the SLA engine's
evidence: the right samples with their intervals, maintenance for every item,
tickets, overrides; a version 3 store upgraded to 4 keeping its rows."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from dataclasses import replace
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from collector.attribution.model import (
    AttributionResult,
    Confidence,
    Incident,
    IncidentKind,
    Root,
    RootScope,
)
from collector.errors import ConfigError, StoreError
from collector.sla.evidence import load_evidence, load_item, load_items
from collector.sla.importer import import_file, parse_records, parse_time_ns
from collector.sla.model import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    Cause,
    CheckKey,
    MaintenanceKind,
    MaintenanceWindow,
    Override,
    Sample,
    Ticket,
)
from collector.store.sqlite import MIGRATIONS, SCHEMA_VERSION, BatchResult, Store
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "import-sonoran.jsonl"
MARCH = parse_time_ns("2026-03-01T00:00:00Z")
APRIL = parse_time_ns("2026-04-01T00:00:00Z")
FRA_WEB = CheckKey("fra", "web")
NYC_WEB = CheckKey("nyc", "web")
FRA_SMTP = CheckKey("fra", "smtp")


def record(record_type: str, **fields: Any) -> str:
    return json.dumps({"type": record_type, **fields})


def item(item_id: str, *checks: CheckKey, **extra: Any) -> str:
    listed = [{"agent": c.agent_id, "check": c.check_id} for c in checks]
    return record("service_item", id=item_id, policy="sonoran-web", monthly_fee="100",
                  currency="USD", checks=listed, **extra)  # fmt: skip


def obs(check: CheckKey, start_ns: int, **extra: Any) -> str:
    fields: dict[str, Any] = {"ok": True, **extra}
    if "outcome" in fields:
        del fields["ok"]
    return record("observation", agent=check.agent_id, check=check.check_id, start=start_ns,
                  **fields)  # fmt: skip


def span(record_type: str, start_ns: int, end_ns: int, **extra: Any) -> str:
    return record(record_type, start=start_ns, end=end_ns, **extra)


def import_lines(db: Path, tmp_path: Path, *lines: str) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    import_file(source, db)


def agent_batch(*starts_and_outcomes: tuple[int, int]) -> up.ObservationBatch:
    batch = up.ObservationBatch(sequence=1)
    for start, outcome in starts_and_outcomes:
        batch.observations.add(check_id="web", kind=pb.CHECK_KIND_HTTP, target="t",
                               start_unix_ns=start, outcome=outcome)  # fmt: skip
    return batch


def store_agent_batch(db: Path, batch: up.ObservationBatch) -> None:
    store = Store(db)
    try:
        result, _ = asyncio.run(store.write_batch("nyc", 7, batch, MARCH))
    finally:
        store.close()
    assert result is BatchResult.STORED


@pytest.fixture
def march(tmp_path: Path) -> Path:
    """web-1 (fra/web, nyc/web) and mail-1 (fra/smtp), rounds in and around March,
    from a file and from agent nyc."""
    db = tmp_path / "c.db"
    import_lines(
        db, tmp_path,
        item("web-1", FRA_WEB, NYC_WEB, name="Web", prior_invoice="99.95", good_standing=False),
        item("mail-1", FRA_SMTP),
        # fra/web says its interval; the first is before the lookback, the last at the end.
        obs(FRA_WEB, MARCH - DAY - 1, interval_s=60),
        obs(FRA_WEB, MARCH - DAY, interval_s=60),
        obs(FRA_WEB, MARCH, interval_s=60),
        obs(FRA_WEB, MARCH + MINUTE, ok=False, interval_s=60, cause="network"),
        obs(FRA_WEB, APRIL - MINUTE, interval_s=30),
        obs(FRA_WEB, APRIL, interval_s=60),
        # nyc/web does not: gaps of 5, 5, 5 and 15 minutes (with the agent's rounds below).
        obs(NYC_WEB, MARCH),
        obs(NYC_WEB, MARCH + 5 * MINUTE, outcome="timeout"),
        obs(NYC_WEB, MARCH + 10 * MINUTE, ok=False, cause="host"),
        obs(FRA_SMTP, MARCH + 3 * MINUTE),
        obs(CheckKey("fra", "unrelated"), MARCH + 4 * MINUTE),
        span("maintenance", MARCH + 2 * HOUR, MARCH + 3 * HOUR, announced=MARCH - 3 * DAY,
             kind="planned", note="all"),
        span("maintenance", MARCH + 5 * HOUR, MARCH + 6 * HOUR, item="web-1",
             announced=MARCH + 4 * HOUR, kind="emergency"),
        span("maintenance", MARCH + 7 * HOUR, MARCH + 8 * HOUR, item="mail-1",
             announced=MARCH, kind="patch"),
        # Ends exactly where the lookback begins: outside, the span is half-open.
        span("maintenance", MARCH - 2 * DAY, MARCH - DAY, announced=0, kind="planned"),
        span("maintenance", APRIL, APRIL + HOUR, announced=0, kind="planned"),
        record("ticket", item="web-1", opened=MARCH - 20 * DAY, reference="T-1"),
        record("ticket", item="web-1", opened=APRIL + DAY, credit_requested=True),
        record("ticket", item="mail-1", opened=MARCH + DAY),
        span("override", MARCH + MINUTE, MARCH + 2 * MINUTE, item="web-1", cause="customer",
             reason="customer's firewall"),
        span("override", MARCH - 3 * DAY, MARCH - 2 * DAY, item="web-1", cause="host",
             reason="February's"),
        span("override", MARCH, MARCH + HOUR, item="mail-1", cause="ddos", reason="mail's"),
    )  # fmt: skip
    # The agent reports the 10-minute round too (the import wins there) and 15 later.
    store_agent_batch(
        db,
        agent_batch(
            (MARCH + 10 * MINUTE, pb.OUTCOME_OK),
            (MARCH + 15 * MINUTE, pb.OUTCOME_REFUSED),
            (MARCH + 30 * MINUTE, pb.OUTCOME_OK),
        ),
    )
    return db


def test_samples_of_the_items_checks_in_the_span_with_their_intervals(march: Path) -> None:
    with sqlite3.connect(march) as conn:
        evidence = load_evidence(conn, load_item(conn, "web-1"), MARCH, APRIL)
    five = 5 * MINUTE  # nyc's median gap: 5, 5, 5, 15 minutes
    assert evidence.samples == (
        Sample(FRA_WEB, MARCH - DAY, True, MINUTE),
        Sample(FRA_WEB, MARCH, True, MINUTE),
        Sample(NYC_WEB, MARCH, True, five),
        Sample(FRA_WEB, MARCH + MINUTE, False, MINUTE, Cause.NETWORK),
        Sample(NYC_WEB, MARCH + 5 * MINUTE, False, five),
        Sample(NYC_WEB, MARCH + 10 * MINUTE, False, five, Cause.HOST),
        Sample(NYC_WEB, MARCH + 15 * MINUTE, False, five),
        Sample(NYC_WEB, MARCH + 30 * MINUTE, True, five),
        Sample(FRA_WEB, APRIL - MINUTE, True, 30 * SECOND),
    )


def test_maintenance_for_the_item_and_for_every_item_tickets_and_overrides(march: Path) -> None:
    with sqlite3.connect(march) as conn:
        web = load_evidence(conn, load_item(conn, "web-1"), MARCH, APRIL)
        mail = load_evidence(conn, load_item(conn, "mail-1"), MARCH, APRIL)
    # As imported, with the store's id and the time it was stored.
    assert [replace(m, created_ns=None) for m in web.maintenance] == [
        MaintenanceWindow(None, MARCH + 2 * HOUR, MARCH + 3 * HOUR, MARCH - 3 * DAY,
                          MaintenanceKind.SCHEDULED, "all", window_id=1),
        MaintenanceWindow("web-1", MARCH + 5 * HOUR, MARCH + 6 * HOUR, MARCH + 4 * HOUR,
                          MaintenanceKind.EMERGENCY, "", window_id=2),
    ]  # fmt: skip
    assert all(m.created_ns for m in web.maintenance)
    assert [(m.item_id, m.kind) for m in mail.maintenance] == [
        (None, MaintenanceKind.SCHEDULED), ("mail-1", MaintenanceKind.PATCH)
    ]  # fmt: skip
    # Every ticket of the item, even one opened after the month (a late claim).
    assert web.tickets == (
        Ticket("web-1", MARCH - 20 * DAY, "T-1", False),
        Ticket("web-1", APRIL + DAY, "", True),
    )
    assert web.overrides == (
        Override("web-1", MARCH + MINUTE, MARCH + 2 * MINUTE, Cause.CUSTOMER,
                 "customer's firewall"),
    )  # fmt: skip
    assert [s.check for s in mail.samples] == [FRA_SMTP]
    # One round: no gap to infer from, so the default minute.
    assert mail.samples[0].interval_ns == MINUTE
    assert [o.reason for o in mail.overrides] == ["mail's"]


def test_items_come_back_as_imported(march: Path) -> None:
    with sqlite3.connect(march) as conn:
        items = load_items(conn)
        with pytest.raises(ConfigError, match="no service item 'web-9' in the store"):
            load_item(conn, "web-9")
    assert [i.id for i in items] == ["mail-1", "web-1"]
    web = items[1]
    assert (web.name, web.policy, web.monthly_fee, web.currency) == (
        "Web", "sonoran-web", Decimal(100), "USD"
    )  # fmt: skip
    assert (web.prior_invoice, web.good_standing) == (Decimal("99.95"), False)
    assert web.checks == (FRA_WEB, NYC_WEB)
    assert (items[0].prior_invoice, items[0].good_standing) == (None, True)


def test_the_example_file_imports_and_gives_the_documented_evidence(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    counts = import_file(EXAMPLE, db)
    assert {name: c.given for name, c in counts.items()} == {
        "service items": 2, "observations": 9, "maintenance windows": 2, "tickets": 1,
        "overrides": 1,
    }  # fmt: skip
    with sqlite3.connect(db) as conn:
        web = load_evidence(conn, load_item(conn, "sonoran-web-1"), MARCH, APRIL)
        mail = load_evidence(conn, load_item(conn, "sonoran-mail-1"), MARCH, APRIL)
    at = parse_time_ns("2026-03-04T14:00:00Z")
    nyc = CheckKey("probe-nyc", "web-headers")
    assert [(s.check.agent_id, s.start_ns - at, s.ok) for s in web.samples] == [
        ("probe-fra", 0, True), ("probe-nyc", 30 * SECOND, True),
        ("probe-fra", 60 * SECOND, False), ("probe-nyc", 90_250_000_000, False),
        ("probe-fra", 120 * SECOND, False), ("probe-nyc", 150 * SECOND, True),
        ("probe-fra", 180 * SECOND, True),
    ]  # fmt: skip
    # probe-nyc gives no interval: the lower median of its gaps, 60.25 s and 59.75 s.
    assert {s.interval_ns for s in web.samples if s.check == nyc} == {59_750_000_000}
    assert [m.item_id for m in web.maintenance] == [None]
    assert [m.kind for m in mail.maintenance] == [MaintenanceKind.SCHEDULED,
                                                  MaintenanceKind.EMERGENCY]  # fmt: skip
    assert [(s.check.check_id, s.cause) for s in mail.samples] == [
        ("pop3", Cause.DDOS), ("smtp", None)
    ]  # fmt: skip
    assert web.tickets[0].reference == "SON-48213"
    assert web.overrides[0].cause is Cause.NETWORK


def test_the_documented_example_is_the_example_file() -> None:
    doc = (REPO / "docs" / "import-format.md").read_text()
    blocks = re.findall(r"```jsonl\n(.*?)```", doc, flags=re.S)
    assert blocks, "docs/import-format.md has no ```jsonl block"
    assert blocks[0] == EXAMPLE.read_text()
    parse_records(blocks[0].splitlines())  # every line valid on its own terms too


def test_a_failed_import_keeps_nothing_and_spares_an_agents_batch(tmp_path: Path) -> None:
    """Written in the same group commit as an agent's batch, an import that fails at its
    last table rolls back alone."""
    db = tmp_path / "c.db"
    Store(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON overrides BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
    records = parse_records(
        [item("web-1", NYC_WEB), obs(NYC_WEB, MARCH),
         span("maintenance", MARCH, MARCH + HOUR, announced=0, kind="planned"),
         record("ticket", item="web-1", opened=MARCH),
         span("override", MARCH, MARCH + HOUR, item="web-1", cause="host", reason="r")]
    )  # fmt: skip
    store = Store(db)

    async def both() -> list[object]:
        return await asyncio.gather(
            store.write_batch("nyc", 7, agent_batch((MARCH, pb.OUTCOME_OK)), MARCH),
            store.import_records(records, MARCH),
            return_exceptions=True,
        )

    try:
        batch, imported = asyncio.run(both())
    finally:
        store.close()
    assert isinstance(imported, StoreError)
    assert batch == (BatchResult.STORED, [])
    with sqlite3.connect(db) as conn:
        for table in ("service_items", "service_item_checks", "maintenance_windows", "tickets",
                      "overrides"):  # fmt: skip
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
        assert conn.execute("SELECT sequence_epoch FROM observations").fetchall() == [(7,)]


def version_3_store(path: Path) -> None:
    schema = resources.files("collector.store").joinpath("schema.sql").read_text()
    with sqlite3.connect(path) as conn:
        conn.executescript(f"BEGIN; {schema}; PRAGMA user_version=1; COMMIT;")
        for step in (2, 3):
            conn.executescript(f"BEGIN; {MIGRATIONS[step]}; PRAGMA user_version={step}; COMMIT;")
        conn.execute("INSERT INTO batches VALUES ('nyc', 1, 1, 5, 1)")
        conn.execute(
            "INSERT INTO observations (agent_id, sequence_epoch, sequence, check_id, kind, target,"
            " start_ns, duration_ns, outcome, error_class, error_detail, packets_sent,"
            " packets_received) VALUES ('nyc', 1, 1, 'web', 'http', 't', ?, 1, 'failed',"
            " 'bad_status', '', 0, 0)",
            (MARCH + HOUR,),
        )


def test_a_version_3_store_is_upgraded_keeping_its_rows_and_imports(tmp_path: Path) -> None:
    db = tmp_path / "v3.db"
    version_3_store(db)
    # The importer reads the store's items before upgrading it: none in a version 3 store.
    import_lines(db, tmp_path, item("web-1", NYC_WEB), obs(NYC_WEB, MARCH + 2 * HOUR))
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute(
            "SELECT sequence_epoch, outcome, error_class, cause, interval_ns FROM observations "
            "ORDER BY start_ns"
        ).fetchall() == [(1, "failed", "bad_status", None, None), (0, "ok", "none", None, None)]
        evidence = load_evidence(conn, load_item(conn, "web-1"), MARCH, APRIL)
    assert evidence.samples == (
        Sample(NYC_WEB, MARCH + HOUR, False, HOUR),
        Sample(NYC_WEB, MARCH + 2 * HOUR, True, HOUR),
    )


def _verdict_run(cause: Cause, observed: Cause | None, start: int, end: int) -> AttributionResult:
    incident = Incident(
        kind=IncidentKind.OUTAGE, root=Root(RootScope.ITEM, "web-2"), cause=cause,
        start_ns=start, end_ns=end, items=("web-2",), affected=(),
        confidence=Confidence.HIGH, evidence=(), observed_cause=observed,
    )  # fmt: skip
    return AttributionResult(start - HOUR, end + HOUR, (incident,), {})


@pytest.mark.parametrize(
    ("cause", "observed", "expected"),
    [
        (Cause.SERVICE, None, Cause.SERVICE),
        # Inside a window the measured cause goes on: the policy judges the window.
        (Cause.MAINTENANCE, Cause.CUSTOMER, Cause.CUSTOMER),
    ],
)
def test_agents_failed_rounds_take_the_attribution_verdict(
    tmp_path: Path, cause: Cause, observed: Cause | None, expected: Cause
) -> None:
    db = tmp_path / "c.db"
    start = MARCH + 10 * MINUTE
    # An imported round's own cause wins over the verdict.
    imported = obs(FRA_WEB, start + 30 * SECOND, outcome="timeout", cause="upstream")
    import_lines(db, tmp_path, item("web-2", NYC_WEB, FRA_WEB), imported)
    rounds = [(start + i * MINUTE, pb.OUTCOME_REFUSED) for i in range(3)]
    store_agent_batch(db, agent_batch((start - MINUTE, pb.OUTCOME_OK), *rounds,
                                      (start + 3 * MINUTE, pb.OUTCOME_OK)))  # fmt: skip
    store = Store(db)
    try:
        asyncio.run(
            store.save_attribution(_verdict_run(cause, observed, start, start + 3 * MINUTE))
        )
    finally:
        store.close()
    with sqlite3.connect(db) as conn:
        evidence = load_evidence(conn, load_item(conn, "web-2"), MARCH, APRIL)
    causes = [(s.start_ns, s.ok, s.cause) for s in evidence.samples]
    assert causes == [
        (start - MINUTE, True, None),
        (start, False, expected),
        (start + 30 * SECOND, False, Cause.UPSTREAM),
        *((t, False, expected) for t, _ in rounds[1:]),
        (start + 3 * MINUTE, True, None),
    ]
