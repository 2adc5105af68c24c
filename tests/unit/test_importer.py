"""``slawatch-collector import``: every problem named by its line and field, a bad file
imports nothing, a good one is counted, re-imported without repeats, exact in money
and time."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from collector.cli import main
from collector.errors import InputFileError
from collector.sla.importer import import_file, parse_records, parse_time_ns
from collector.sla.model import CheckKey, MaintenanceKind
from collector.store.sla_tables import TableCount

# 2026-03-01T10:00:00Z, by hand: 20,513 days from 1970-01-01 to 2026-03-01
# (56 years, 14 of them leap: 56 * 365 + 14 = 20,454, plus Jan 31 + Feb 28 = 59) and 10 h.
T0_S = 20_513 * 86_400 + 10 * 3600
T0 = T0_S * 10**9
S = 10**9

ITEM: dict[str, Any] = {
    "type": "service_item", "id": "web-1", "policy": "sonoran-web", "monthly_fee": "1000.00",
    "currency": "USD", "checks": [{"agent": "fra", "check": "web"}],
}  # fmt: skip
OBS: dict[str, Any] = {
    "type": "observation", "agent": "fra", "check": "web", "start": "2026-03-01T10:00:00Z",
    "ok": True,
}  # fmt: skip
MAINT: dict[str, Any] = {
    "type": "maintenance", "start": "2026-03-01T10:00:00Z", "end": "2026-03-01T11:00:00Z",
    "announced": "2026-02-20T09:00:00Z", "kind": "planned",
}  # fmt: skip
TICKET: dict[str, Any] = {"type": "ticket", "item": "web-1", "opened": "2026-03-01T10:30:00Z"}
OVERRIDE: dict[str, Any] = {
    "type": "override", "item": "web-1", "start": "2026-03-01T10:00:00Z",
    "end": "2026-03-01T10:10:00Z", "cause": "network", "reason": "NOC confirmed",
}  # fmt: skip


def line(base: dict[str, Any], **changes: Any) -> str:
    """``base`` with ``changes``; a change to None removes the key."""
    data = {**base, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not None})


def problems(*lines: str, stored: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(InputFileError) as caught:
        parse_records(lines, "f.jsonl", stored)
    assert str(caught.value).startswith("f.jsonl: nothing imported\n  line ")
    return list(caught.value.problems)


# -- time ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T10:00:00Z", T0),
        ("2026-03-01t10:00:00z", T0),
        ("2026-03-01 10:00:00Z", T0),
        ("2026-03-01T12:00:00+02:00", T0),
        ("2026-03-01T04:30:00-05:30", T0),
        # Across midnight and a month: 23:00 on 28 February at -11:00 is 10:00Z on 1 March.
        ("2026-02-28T23:00:00-11:00", T0),
        ("2026-03-01T10:00:00.5Z", T0 + 500_000_000),
        ("2026-03-01T10:00:00.000000001Z", T0 + 1),
        ("2026-03-01T10:00:00.123456789+00:00", T0 + 123_456_789),
        ("1970-01-01T00:00:00Z", 0),
        (T0 + 7, T0 + 7),
    ],
)
def test_times_are_exact_to_the_nanosecond(text: str | int, expected: int) -> None:
    assert parse_time_ns(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-03-01T10:00:00", "not an RFC 3339 timestamp with an offset"),
        ("2026-03-01", "not an RFC 3339 timestamp"),
        ("2026-03-01T10:00:00.1234567891Z", "not an RFC 3339 timestamp"),
        ("2026-02-29T10:00:00Z", "day is out of range"),
        ("2026-03-01T10:00:60Z", "second must be in 0..59"),
        ("2026-03-01T10:00:00+24:00", "is not a time offset"),
        ("1969-12-31T23:59:59Z", "outside 1970-01-01"),
        (2**63, "outside 1970-01-01"),
        (-1, "outside 1970-01-01"),
        (True, "not True"),
        (Decimal("1.5"), "RFC 3339 timestamp or integer nanoseconds"),
    ],
)
def test_bad_times_say_why(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_time_ns(value)


# -- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("not json", "line 2: not valid JSON: Expecting value at column 1"),
        ('{"type": "ticket", "type": "ticket"}', "line 2: not a JSON object: the key 'type'"),
        ("[1, 2]", "line 2: not a JSON object: must be a JSON object, not list"),
        ('{"type": "observation", "start": NaN}', "line 2: not a JSON object: NaN is not"),
        ("{}", "line 2: type: required (one of service_item, observation, maintenance"),
        ('{"type": "sample"}', "line 2: type: 'sample' is not a type"),
        (line(OBS, colour="red"), "line 2: colour: unknown field (known: agent, cause, check"),
        (line(ITEM, id="web 1"), "line 2: id: 'web 1' must match"),
        (line(ITEM, id="web-2", policy=""), "line 2: policy: must be a non-empty string"),
        (line(ITEM, id="web-2", policy=None), "line 2: policy: required"),
        (line(ITEM, id="web-2", monthly_fee="-0.01"), "line 2: monthly_fee: '-0.01' must be"),
        (line(ITEM, id="web-2", monthly_fee="ten"), "line 2: monthly_fee: 'ten' is not a decimal"),
        (line(ITEM, id="web-2", monthly_fee="NaN"), "line 2: monthly_fee: 'NaN' must be a finite"),
        (line(ITEM, id="web-2", monthly_fee=True), "line 2: monthly_fee: must be a decimal"),
        (line(ITEM, id="web-2", prior_invoice=[1]), "line 2: prior_invoice: must be a decimal"),
        (line(ITEM, id="web-2", currency="usd"), "line 2: currency: 'usd' is not a currency"),
        (line(ITEM, id="web-2", currency="EURO"), "line 2: currency: 'EURO' is not a currency"),
        (line(ITEM, id="web-2", good_standing="yes"), "line 2: good_standing: must be true or"),
        (line(ITEM, id="web-2", checks=[]), "line 2: checks: must be a list of 1 to"),
        (line(ITEM, id="web-2", checks=None), "line 2: checks: required"),
        ("[" * 100_000, "line 2: not a JSON object: nested too deeply"),
        (line(ITEM, id="web-2", checks=["fra/web"]), "line 2: checks[0]: must be an object"),
        (line(ITEM, id="web-2", checks=[{"agent": "fra"}]), "line 2: checks[0].check: required"),
        (
            line(ITEM, id="web-2", checks=[{"agent": "fra", "check": "w", "port": 1}]),
            "line 2: checks[0].port: unknown field (known: agent, check)",
        ),
        (line(ITEM), "line 2: id: the same id as line 1"),
        (line(OBS, ok=None), "line 2: ok: give either ok (true or false) or outcome"),
        (line(OBS, outcome="ok"), "line 2: ok: give either ok (true or false) or outcome"),
        (line(OBS, ok=None, outcome="down"), "line 2: outcome: 'down' is not one of ok, timeout"),
        (line(OBS, ok=1), "line 2: ok: must be true or false, not 1"),
        (line(OBS, start="yesterday"), "line 2: start: 'yesterday' is not an RFC 3339"),
        (line(OBS, start=None), "line 2: start: required"),
        (line(OBS, interval_s=0), "line 2: interval_s: 0 is outside (0, 86400] s"),
        (line(OBS, interval_s="60"), "line 2: interval_s: must be a number of seconds"),
        (line(OBS, duration_s=-1), "line 2: duration_s: -1 is outside [0, 86400] s"),
        (line(OBS, cause="aliens"), "line 2: cause: 'aliens' is not one of network, upstream"),
        (line(OBS, kind="gopher"), "line 2: kind: 'gopher' is not one of icmp, tcp, http"),
        (line(OBS, target="x" * 256), "line 2: target: longer than 255 characters"),
        (line(MAINT, kind=None), "line 2: kind: required"),
        (line(MAINT, kind="surprise"), "line 2: kind: 'surprise' is not one of scheduled"),
        (line(MAINT, announced=None), "line 2: announced: required"),
        (line(MAINT, end=MAINT["start"]), "line 2: end: '2026-03-01T10:00:00Z' is not after"),
        (line(MAINT, item="web-9"), "line 2: item: 'web-9' is not a service item of this file"),
        (line(TICKET, item=None), "line 2: item: required"),
        (line(TICKET, credit_requested="no"), "line 2: credit_requested: must be true or false"),
        (line(OVERRIDE, reason=""), "line 2: reason: must be a non-empty string"),
        (line(OVERRIDE, cause=None), "line 2: cause: required"),
        (line(OVERRIDE, end="2026-03-01T09:00:00Z"), "line 2: end: '2026-03-01T09:00:00Z' is"),
    ],
)
def test_each_problem_is_named_by_line_and_field(bad: str, expected: str) -> None:
    found = problems(line(ITEM), bad)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_every_problem_of_a_file_is_reported_at_once_in_line_order() -> None:
    found = problems(
        line(TICKET, item="nope", opened="2026-03-01"),  # two problems on one line
        line(OBS),
        "",  # blank lines are skipped but counted
        line(ITEM, monthly_fee="-5"),  # defines web-1 even so: no cascade onto line 1
        line(OBS),  # a repeat of line 2
        line(MAINT, item="web-1", start="2026-03-01T11:00:00Z"),
    )
    assert found == [
        "line 1: opened: '2026-03-01' is not an RFC 3339 timestamp with an offset "
        "(e.g. 2026-03-01T10:00:00Z or 2026-03-01T12:00:00+02:00)",
        "line 1: item: 'nope' is not a service item of this file nor of the store",
        "line 4: monthly_fee: '-5' must be a finite amount >= 0",
        "line 5: start: the same agent, check and start as line 2",
        "line 6: end: '2026-03-01T11:00:00Z' is not after start",
    ]


def test_repeats_are_found_for_every_record_type() -> None:
    found = problems(
        line(ITEM), line(MAINT), line(MAINT, note="again"), line(TICKET),
        line(TICKET, reference="T-2"), line(OVERRIDE), line(OVERRIDE, reason="other"),
    )  # fmt: skip
    assert found == [
        "line 3: start: the same scope, start and end as line 2",
        "line 5: opened: the same item and opened as line 4",
        "line 7: start: the same item, start and end as line 6",
    ]


def test_items_may_be_defined_later_in_the_file_or_in_the_store() -> None:
    records = parse_records([line(TICKET), line(ITEM)])
    assert [t.item_id for t in records.tickets] == ["web-1"]
    records = parse_records([line(OVERRIDE, item="db-1")], stored_items=("db-1",))
    assert [o.item_id for o in records.overrides] == ["db-1"]


def test_a_file_that_is_wrong_throughout_shows_the_first_problems_and_keeps_all() -> None:
    with pytest.raises(InputFileError) as caught:
        parse_records(["{}"] * 500, "f.jsonl")
    assert len(caught.value.problems) == 500
    message = str(caught.value)
    assert message.count("\n  line ") == InputFileError.SHOWN
    assert message.endswith("... and 300 more problems")


def test_lines_that_are_not_utf8_are_named() -> None:
    with pytest.raises(InputFileError) as caught:
        parse_records([line(ITEM).encode(), b'{"type": "\xff"}'])
    assert caught.value.problems == ("line 2: not UTF-8: invalid start byte",)


# -- values ---------------------------------------------------------------------------


def test_fees_are_exact_decimals_whether_numbers_or_strings() -> None:
    records = parse_records(
        [
            '{"type": "service_item", "id": "a", "policy": "p", "monthly_fee": 0.1, '
            '"prior_invoice": 1234.10, "currency": "EUR", '
            '"checks": [{"agent": "x", "check": "y"}]}',
            line(ITEM, monthly_fee="19.99", prior_invoice=None),
            line(ITEM, id="c", monthly_fee=30),
        ]
    )
    fees = [(i.monthly_fee, i.prior_invoice) for i in records.items]
    # 0.1 as a float would be 0.1000000000000000055511151231257827; "1234.10" keeps its cent.
    assert fees == [(Decimal("0.1"), Decimal("1234.10")), (Decimal("19.99"), None),
                    (Decimal(30), None)]  # fmt: skip
    assert str(records.items[0].prior_invoice) == "1234.10"


def test_a_good_file_becomes_records_with_defaults_filled_in() -> None:
    records = parse_records(
        [
            line(ITEM, name="Web", good_standing=False),
            line(OBS, ok=False, interval_s=60, duration_s=1.5, cause="ddos"),
            line(OBS, ok=None, outcome="timeout", start=T0 + S, kind="tcp", target="h:443"),
            line(MAINT, kind="patch", note="kernel"),
            line(TICKET, reference="T-1", credit_requested=True),
            line(OVERRIDE),
        ]
    )
    (item,) = records.items
    assert (item.name, item.good_standing, item.checks) == ("Web", False, (CheckKey("fra", "web"),))
    failed, timeout = records.observations
    assert (failed.outcome, failed.interval_ns, failed.duration_ns, failed.cause) == (
        "failed", 60 * S, 1_500_000_000, "ddos"
    )  # fmt: skip
    assert (timeout.outcome, timeout.start_ns, timeout.kind, timeout.target) == (
        "timeout", T0 + S, "tcp", "h:443"
    )  # fmt: skip
    assert (timeout.interval_ns, timeout.duration_ns, timeout.cause) == (None, 0, None)
    (window,) = records.maintenance
    assert (window.item_id, window.kind, window.note) == (None, MaintenanceKind.PATCH, "kernel")
    assert (window.start_ns, window.end_ns) == (T0, T0 + 3600 * S)
    assert records.tickets[0].credit_requested is True
    assert records.overrides[0].end_ns == T0 + 600 * S


# -- into the store --------------------------------------------------------------------


def write_file(path: Path, *lines: str) -> Path:
    path.write_text("".join(f"{text}\n" for text in lines))
    return path


def table_rows(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("service_items", "service_item_checks", "observations",
                          "maintenance_windows", "tickets", "overrides")
        }  # fmt: skip


GOOD = (line(ITEM), line(OBS), line(OBS, start=T0 + 60 * S, ok=False), line(MAINT),
        line(TICKET), line(OVERRIDE))  # fmt: skip


def test_a_good_file_is_counted_and_a_second_import_adds_nothing(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    source = write_file(tmp_path / "in.jsonl", *GOOD)
    first = import_file(source, db, now_ns=T0)
    assert first == {
        "service items": TableCount(1, 1), "observations": TableCount(2, 2),
        "maintenance windows": TableCount(1, 1), "tickets": TableCount(1, 1),
        "overrides": TableCount(1, 1),
    }  # fmt: skip
    after_first = table_rows(db)
    again = import_file(source, db, now_ns=T0 + S)
    assert {name: count.new for name, count in again.items()} == dict.fromkeys(first, 0)
    assert table_rows(db) == after_first == {
        "service_items": 1, "service_item_checks": 1, "observations": 2,
        "maintenance_windows": 1, "tickets": 1, "overrides": 1,
    }  # fmt: skip


def test_a_reimport_replaces_what_it_names(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    import_file(write_file(tmp_path / "a.jsonl", *GOOD), db)
    changed = write_file(
        tmp_path / "b.jsonl",
        line(ITEM, monthly_fee="12.10", checks=[{"agent": "nyc", "check": "web"}]),
        line(OBS, ok=False, cause="host"),  # was ok
        line(MAINT, note="moved", kind="emergency"),
    )
    counts = import_file(changed, db)
    assert counts["observations"] == TableCount(1, 0)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT monthly_fee FROM service_items").fetchall() == [("12.10",)]
        # The item has exactly the checks of its last import, not the union.
        assert conn.execute("SELECT agent_id, check_id FROM service_item_checks").fetchall() == [
            ("nyc", "web")
        ]
        assert conn.execute(
            "SELECT outcome, cause FROM observations WHERE start_ns=?", (T0,)
        ).fetchall() == [("failed", "host")]
        assert conn.execute("SELECT kind, note FROM maintenance_windows").fetchall() == [
            ("emergency", "moved")
        ]


def test_a_bad_file_imports_nothing_and_creates_no_store(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    bad = write_file(tmp_path / "bad.jsonl", *GOOD, line(TICKET, item="web-2"))
    with pytest.raises(InputFileError, match="line 7: item: 'web-2'"):
        import_file(bad, db)
    assert not db.exists()
    import_file(write_file(tmp_path / "good.jsonl", *GOOD), db)
    before = table_rows(db)
    more = write_file(tmp_path / "more.jsonl", line(OBS, start=T0 + 120 * S), line(OBS, ok="x"))
    with pytest.raises(InputFileError):
        import_file(more, db)
    assert table_rows(db) == before


def test_the_command_prints_counts_or_every_problem(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    good = write_file(tmp_path / "good.jsonl", *GOOD)
    result = CliRunner().invoke(main, ["import", str(good), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert f"{good}: imported into {db}" in result.output
    assert "observations" in result.output
    assert "2  (2 new)" in result.output
    bad = write_file(tmp_path / "bad.jsonl", line(OBS, ok=None), "{")
    result = CliRunner().invoke(main, ["import", str(bad), "--db", str(db)])
    assert result.exit_code == 2
    assert f"{bad}: nothing imported" in result.output
    assert "line 1: ok: give either ok" in result.output
    assert "line 2: not valid JSON" in result.output
    missing = CliRunner().invoke(main, ["import", str(tmp_path / "none.jsonl"), "--db", str(db)])
    assert missing.exit_code == 2
    assert "cannot read: No such file or directory" in missing.output
