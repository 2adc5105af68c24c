"""`slawatch-collector summary` shows per agent the time its batches cover, the gaps, and the
batches it reports it dropped."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from click.testing import CliRunner

from collector.cli import main
from collector.store.sqlite import Store
from collector.summary import check_summaries, format_table
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up

SECOND = 10**9
# Whole seconds, so the expected times below print exactly.
NOW = time.time_ns() // SECOND * SECOND


def _batch(sequence: int, start_s: int, end_s: int, *drops: up.SpoolDrop) -> up.ObservationBatch:
    """A batch whose window is [NOW - start_s, NOW - end_s)."""
    batch = up.ObservationBatch(
        sequence=sequence,
        window_start_unix_ns=NOW - start_s * SECOND,
        window_end_unix_ns=NOW - end_s * SECOND,
    )
    batch.observations.add(
        check_id="tcp-a", kind=pb.CHECK_KIND_TCP, target="t:1",
        start_unix_ns=NOW - start_s * SECOND, outcome=pb.OUTCOME_OK, packets_sent=1,
        packets_received=1,
    )  # fmt: skip
    batch.spool_drops.extend(drops)
    return batch


def _store_history(db: Path) -> None:
    """Agent a: covered 600..400 s ago and 300..100 s ago; batches 3..4 of the gap dropped."""
    drop = up.SpoolDrop(
        reason=up.SpoolDrop.REASON_SIZE, dropped_unix_ns=NOW - 200 * SECOND, first_sequence=3,
        last_sequence=4, batches=2, observations=17,
        window_start_unix_ns=NOW - 400 * SECOND, window_end_unix_ns=NOW - 300 * SECOND,
    )  # fmt: skip
    store = Store(db)

    async def write() -> None:
        for agent in ("a", "quiet"):
            await store.record_agent(up.Hello(agent_id=agent, sequence_epoch=1), NOW)
        for batch in (_batch(1, 600, 500), _batch(2, 500, 400), _batch(5, 300, 100, drop)):
            await store.write_batch("a", 1, batch, NOW)

    try:
        asyncio.run(write())
    finally:
        store.close()


def test_coverage_gaps_and_drops_per_agent(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    _store_history(db)
    summary = check_summaries(db, NOW - 1000 * SECOND, NOW)
    a, quiet = summary.agents
    assert a.intervals == [(NOW - 600 * SECOND, NOW - 400 * SECOND),
                           (NOW - 300 * SECOND, NOW - 100 * SECOND)]  # fmt: skip
    assert a.covered_ns == 400 * SECOND
    # Before the first window and between the two; after the last it is not yet a gap.
    assert a.gaps == [(NOW - 1000 * SECOND, NOW - 600 * SECOND),
                      (NOW - 400 * SECOND, NOW - 300 * SECOND)]  # fmt: skip
    assert [(d.first_sequence, d.observations) for d in a.drops] == [(3, 17)]
    assert (quiet.intervals, quiet.drops, quiet.gaps) == ([], [], [])
    # A span that starts inside the first interval clips it; drops before it are left out.
    later = check_summaries(db, NOW - 150 * SECOND, NOW).agents[0]
    assert later.intervals == [(NOW - 150 * SECOND, NOW - 100 * SECOND)]
    assert later.drops == []

    table = format_table(summary).split("\n\n")[1]  # after the checks' table
    line = next(row for row in table.splitlines() if row.startswith("a "))
    assert line.split()[1:5] == ["400.0", "40.00%", "2", "400.0"]
    assert line.split()[-1] == "2/17"
    assert "(100.0 s)" in table
    assert "size: batches 3..4 (17 observations lost)" in table
    assert next(row for row in table.splitlines() if row.startswith("quiet")).split()[1:4] == [
        "0.0", "0.00%", "0",
    ]  # fmt: skip


def test_since_zero_starts_at_the_first_covered_instant(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    _store_history(db)
    a = check_summaries(db, 0, NOW).agents[0]
    assert a.start_ns == NOW - 600 * SECOND
    assert a.gaps == [(NOW - 400 * SECOND, NOW - 300 * SECOND)]


def test_the_summary_command_shows_coverage(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    _store_history(db)
    result = CliRunner().invoke(main, ["summary", "--db", str(db), "--since-minutes", "60"])
    assert result.exit_code == 0, result.output
    assert "tcp-a" in result.output
    assert "covered s" in result.output
    assert "size: batches 3..4 (17 observations lost)" in result.output
