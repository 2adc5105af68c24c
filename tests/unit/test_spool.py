"""The durable spool on a real filesystem: order, acks, restarts, torn writes, bounds."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from agent.errors import SpoolError
from agent.spool import SEGMENT_SUFFIX, Spool, SpoolBounds, merge_drops, read_records
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up

SMALL = SpoolBounds(max_bytes=64 << 10, max_age=3600)


def _observations(count: int, start_ns: int, padding: int = 0) -> list[pb.Observation]:
    return [
        pb.Observation(check_id=f"c{i}", start_unix_ns=start_ns + i, error_detail="x" * padding)
        for i in range(count)
    ]


def _append(spool: Spool, count: int = 3, padding: int = 0, now_ns: int | None = None) -> int:
    now = now_ns or time.time_ns()
    batch = up.ObservationBatch(window_start_unix_ns=now - 10**9, window_end_unix_ns=now)
    batch.observations.extend(_observations(count, now - 10**9, padding))
    return spool.append(batch)


def _read_all(spool: Spool) -> list[up.ObservationBatch]:
    batches: list[up.ObservationBatch] = []
    while spool.has_unread:
        batches += spool.read_next(4)
    return batches


def test_batches_come_back_in_order_and_acked_ones_never_again(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SpoolBounds())
    sequences = [_append(spool) for _ in range(10)]
    assert sequences == list(range(1, 11))
    assert [b.sequence for b in _read_all(spool)] == sequences
    for sequence in range(1, 5):
        spool.ack(sequence)
    spool.rewind()  # a reconnect: everything unacked again, nothing acked
    assert [b.sequence for b in _read_all(spool)] == list(range(5, 11))
    assert spool.unacked_batches == 6


def test_a_restart_resends_the_unacked_in_the_same_epoch(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SpoolBounds(max_bytes=1 << 20))  # 64 KiB segments
    for _ in range(200):
        _append(spool, padding=200)
    epoch = spool.epoch
    for sequence in range(1, 151):
        spool.ack(sequence)
    spool.close()

    again = Spool(tmp_path, SpoolBounds(max_bytes=1 << 20))
    assert again.epoch == epoch
    resent = [b.sequence for b in _read_all(again)]
    # At most the tail of one segment before the watermark comes again (the
    # collector answers those DUPLICATE); from 151 on everything, in order.
    assert resent[-50:] == list(range(151, 201))
    assert resent == sorted(set(resent))
    assert _append(again) == 201  # sequences are never reused within an epoch


def test_acked_segments_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SpoolBounds(max_bytes=1 << 20))
    for _ in range(300):
        _append(spool, padding=200)
    assert len(list(tmp_path.glob(f"*{SEGMENT_SUFFIX}"))) > 3
    for sequence in range(1, 301):
        spool.ack(sequence)
    assert len(list(tmp_path.glob(f"*{SEGMENT_SUFFIX}"))) <= 1
    assert spool.unacked_batches == 0


def test_a_torn_append_is_cut_off_at_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SpoolBounds())
    for _ in range(5):
        _append(spool)
    spool.close()
    segment = next(tmp_path.glob(f"*{SEGMENT_SUFFIX}"))
    intact = segment.stat().st_size
    with segment.open("ab") as file:
        file.write(b"\x40\x00\x00\x00garbage of a half-written record")

    again = Spool(tmp_path, SpoolBounds())
    assert segment.stat().st_size == intact
    assert [b.sequence for b in _read_all(again)] == [1, 2, 3, 4, 5]
    assert _append(again) == 6
    assert [meta.sequence for _, meta, _ in read_records(segment)][-1] == 6


def test_a_spool_in_use_is_refused(tmp_path: Path) -> None:
    Spool(tmp_path, SpoolBounds())
    with pytest.raises(SpoolError, match="in use by another agent"):
        Spool(tmp_path, SpoolBounds())


def test_a_wiped_spool_starts_a_new_epoch(tmp_path: Path) -> None:
    first = Spool(tmp_path / "s", SpoolBounds())
    _append(first)
    epoch = first.epoch
    first.close()
    shutil.rmtree(tmp_path / "s")
    second = Spool(tmp_path / "s", SpoolBounds())
    assert second.epoch != epoch
    assert _append(second) == 1


def test_batches_without_their_epoch_are_refused_not_lost(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SpoolBounds())
    _append(spool)
    spool.close()
    (tmp_path / "epoch").unlink()
    with pytest.raises(SpoolError, match="has batches but no epoch file"):
        Spool(tmp_path, SpoolBounds())
    assert list(tmp_path.glob(f"*{SEGMENT_SUFFIX}"))


def _reported(batches: list[up.ObservationBatch]) -> list[up.SpoolDrop]:
    return [drop for batch in batches for drop in batch.spool_drops]


def test_size_bound_drops_the_oldest_and_reports_exactly(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SMALL)
    appended: dict[int, int] = {}
    for i in range(120):
        appended[_append(spool, count=1 + i % 4, padding=300)] = 1 + i % 4
        assert spool.size_bytes <= SMALL.max_bytes
    kept = _read_all(spool)
    kept_sequences = {b.sequence for b in kept}
    drops = _reported(kept)
    assert drops, "the bound must have forced drops"
    dropped = {s for d in drops for s in range(d.first_sequence, d.last_sequence + 1)}
    # Every batch is either still spooled or reported dropped: never both, never neither.
    assert dropped | kept_sequences == set(appended)
    assert not dropped & kept_sequences
    assert sum(d.observations for d in drops) == sum(appended[s] for s in dropped)
    assert sum(d.batches for d in drops) == len(dropped)
    assert spool.stats.observations_dropped == sum(d.observations for d in drops)
    assert all(d.reason == up.SpoolDrop.REASON_SIZE for d in drops)
    assert min(d.first_sequence for d in drops) == 1  # the oldest went first


def test_acked_batches_are_not_reported_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SMALL)
    for _ in range(10):
        _append(spool, padding=300)
    for sequence in (1, 2, 3, 5):  # 5 acked out of order
        spool.ack(sequence)
    for _ in range(110):
        _append(spool, padding=300)
    dropped = {
        s for d in _reported(_read_all(spool)) for s in range(d.first_sequence, d.last_sequence + 1)
    }
    assert {4, 6, 7} <= dropped
    assert not {1, 2, 3, 5} & dropped


def test_a_drop_report_that_is_itself_dropped_is_carried_forward(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SMALL)
    total: dict[int, int] = {}
    for _ in range(600):  # several times the bound: reports get dropped too
        total[_append(spool, count=2, padding=300)] = 2
    kept = _read_all(spool)
    drops = _reported(kept)
    dropped = {s for d in drops for s in range(d.first_sequence, d.last_sequence + 1)}
    assert dropped | {b.sequence for b in kept} == set(total)
    assert sum(d.observations for d in drops) == 2 * len(dropped)


def test_age_bound_drops_old_batches(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SpoolBounds(max_bytes=1 << 20, max_age=3600))
    long_ago = time.time_ns() - 3 * 3600 * 10**9
    for _ in range(400):  # fills more than one segment with old batches
        _append(spool, padding=200, now_ns=long_ago)
    _append(spool)
    drops = _reported(_read_all(spool))
    assert drops
    assert all(d.reason == up.SpoolDrop.REASON_AGE for d in drops)
    assert drops[0].first_sequence == 1
    assert drops[0].last_start_unix_ns < long_ago


def test_a_drop_interrupted_before_the_unlink_is_finished_at_restart(tmp_path: Path) -> None:
    """The report is written before the segments go; if the agent dies in between,
    the next start removes them, so they are never both reported and resent."""
    spool = Spool(tmp_path / "s", SMALL)
    while len(list((tmp_path / "s").glob(f"*{SEGMENT_SUFFIX}"))) < 16:
        _append(spool, padding=300)
    for sequence in (1, 2, 3):  # the oldest segment starts with acked batches
        spool.ack(sequence)
    shutil.copytree(tmp_path / "s", tmp_path / "before", ignore=shutil.ignore_patterns("lock"))
    while not spool.stats.batches_dropped:
        _append(spool, padding=300)
    spool.close()
    restored = 0
    for old in (tmp_path / "before").glob(f"*{SEGMENT_SUFFIX}"):  # "undo" the unlinks
        target = tmp_path / "s" / old.name
        if not target.exists():
            shutil.copy(old, target)
            restored += 1
    assert restored

    again = Spool(tmp_path / "s", SMALL)
    kept = _read_all(again)
    drops = _reported(kept)
    dropped = {s for d in drops for s in range(d.first_sequence, d.last_sequence + 1)}
    assert dropped
    assert not dropped & {b.sequence for b in kept}


def test_a_rejected_batch_is_kept_aside_and_not_resent(tmp_path: Path) -> None:
    spool = Spool(tmp_path, SpoolBounds())
    for _ in range(3):
        _append(spool)
    batches = _read_all(spool)
    kept = spool.set_aside(batches[1], "observations[0].duration_ns: negative (-5)")
    spool.ack(1)
    spool.rewind()
    assert [b.sequence for b in _read_all(spool)] == [3]
    assert up.ObservationBatch.FromString(kept.read_bytes()).sequence == 2
    assert "negative" in kept.with_suffix(".reason").read_text()
    # The next batch says the refused one is gone, so its gap is explained.
    _append(spool)
    (report,) = _reported(_read_all(spool))
    assert report.reason == up.SpoolDrop.REASON_REJECTED
    assert (report.first_sequence, report.last_sequence, report.observations) == (2, 2, 3)


def test_acked_segments_never_let_a_sequence_be_reused(tmp_path: Path) -> None:
    """Every segment acked and deleted, then the agent killed (no close): the next
    start must go on after the last sequence, or the collector would take new
    batches for duplicates."""
    spool = Spool(tmp_path, SpoolBounds(max_bytes=1 << 20))
    last = 0
    while len(list(tmp_path.glob(f"*{SEGMENT_SUFFIX}"))) < 3:
        last = _append(spool, padding=200)
    for sequence in range(1, last + 1):
        spool.ack(sequence)
    os.close(spool._lock_fd)  # a kill -9: nothing saved at exit
    again = Spool(tmp_path, SpoolBounds(max_bytes=1 << 20))
    assert _append(again) > last


def test_many_drops_are_merged_and_spread_over_batches(tmp_path: Path) -> None:
    """Every other batch acked (holes), then one huge batch forces most of the spool
    out at once: more runs than one batch may carry (64); every one still reported."""
    spool = Spool(tmp_path, SMALL)
    appended: dict[int, int] = {}
    while len(appended) < 300:
        appended[_append(spool, count=1, padding=100)] = 1
    for sequence in appended:
        if sequence % 2:
            spool.ack(sequence)
    huge = _append(spool, count=1, padding=SMALL.max_bytes // 2)
    follow = [_append(spool, count=1) for _ in range(3)]
    kept = _read_all(spool)
    assert max(len(b.spool_drops) for b in kept) == 64
    drops = _reported(kept)
    dropped = {s for d in drops for s in range(d.first_sequence, d.last_sequence + 1)}
    unacked = {s for s in appended if not s % 2}
    assert dropped | ({b.sequence for b in kept} & unacked) == unacked
    assert sum(d.observations for d in drops) == len(dropped)
    assert huge in {b.sequence for b in kept}
    assert follow[-1] in {b.sequence for b in kept}


def test_merge_drops_joins_touching_runs_of_one_reason() -> None:
    def drop(first: int, last: int, reason: int = up.SpoolDrop.REASON_SIZE) -> up.SpoolDrop:
        return up.SpoolDrop(reason=reason, first_sequence=first, last_sequence=last,
                            batches=last - first + 1, observations=2 * (last - first + 1),
                            first_start_unix_ns=first, last_start_unix_ns=last)  # fmt: skip

    merged = merge_drops([drop(5, 9), drop(1, 4), drop(11, 12), drop(13, 13, 2)])
    assert [(d.first_sequence, d.last_sequence, d.batches, d.observations) for d in merged] == [
        (1, 9, 9, 18), (11, 12, 2, 4), (13, 13, 1, 2),
    ]  # fmt: skip
    assert (merged[0].first_start_unix_ns, merged[0].last_start_unix_ns) == (1, 9)


@pytest.mark.parametrize(("echoes", "documented"), [(1, 70), (20, 135)])
def test_spool_bytes_per_icmp_result_match_the_sizing_in_operations_md(
    tmp_path: Path, echoes: int, documented: int
) -> None:
    """docs/operations.md sizes the spool from these figures: keep them true."""
    from agent.observation import Observation

    spool = Spool(tmp_path, SpoolBounds())
    now = time.time_ns()
    results = 0
    for _ in range(20):  # batches of 100, as a busy agent seals them
        batch = up.ObservationBatch(window_start_unix_ns=now - 10**9, window_end_unix_ns=now)
        for i in range(100):
            Observation(
                check_id=f"icmp-hv-fra-{i:02d}", kind=pb.CHECK_KIND_ICMP, target="198.18.1.12",
                start_unix_ns=now + i, duration_ns=1_900_000_000, outcome=pb.OUTCOME_OK,
                packets_sent=echoes, packets_received=echoes,
                rtt_samples_ns=[350_000 + k * 997 for k in range(echoes)],
            ).to_wire(batch.observations.add())  # fmt: skip
        spool.append(batch)
        results += 100
    per_result = spool.size_bytes / results
    assert documented * 0.85 <= per_result <= documented * 1.15, per_result
