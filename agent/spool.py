"""The agent's durable spool: every batch is on disk before it is sent, until acked.

Layout of ``spool.dir``::

    epoch              this spool's sequence epoch (decimal), made once
    acked              the highest sequence acked so far (decimal; may lag)
    lock               flock'ed while an agent uses the spool
    NNNNNNNNNNNNNNNNNNNN.seg   segments, named by their first sequence
    rejected/          batches the collector refused, with the reason

A segment is a run of records ``[u32 length][u32 crc32][body]``, body =
``meta`` + a serialised ``ObservationBatch``. Each append is fsync'ed before
the batch may be sent. A segment is deleted when all its batches are acked.

Bounds (``max_bytes``, ``max_age``) drop whole segments, oldest first. The
drop report (a ``SpoolDrop``) is written *inside the next batch*, before the
segments are unlinked: if the agent dies in between, opening the spool
finishes the unlink, so a drop is never both reported and resent, nor lost
unreported. The report reaches the collector with that batch, and is stored
exactly once with it.

Sequences are never reused within an epoch; a spool that is new (or was
wiped) starts a new epoch, so (agent, epoch, sequence) stays a unique key.

Reading a segment from disk is a sequential scan; the agent keeps only one
small entry per segment in memory, never the spooled batches themselves.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.errors import SpoolError
from slawatch.v1 import uplink_pb2 as up

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<II")  # body length, crc32 of body
# sequence, observations, first start, last start, window start, window end, drops
_META = struct.Struct("<QIqqqqB")
# A record larger than this cannot be ours (batches stay under 3 MiB).
MAX_RECORD = 8 << 20
SEGMENT_SUFFIX = ".seg"
MIN_SEGMENT_BYTES = 4 << 10
# The collector accepts at most 64 drop reports in one batch.
MAX_DROPS_PER_BATCH = 64
MAX_SEGMENT_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class SpoolBounds:
    max_bytes: int = 256 << 20
    max_age: float = 7 * 86_400.0

    @property
    def segment_bytes(self) -> int:
        """Segments small enough that a forced drop discards ~1/16 of the spool."""
        return max(MIN_SEGMENT_BYTES, min(MAX_SEGMENT_BYTES, self.max_bytes // 16))


@dataclass(frozen=True, slots=True)
class RecordMeta:
    sequence: int
    observations: int
    first_start_ns: int
    last_start_ns: int
    window_start_ns: int
    window_end_ns: int
    has_drops: bool


@dataclass(slots=True)
class _Segment:
    path: Path
    first_sequence: int
    last_sequence: int = 0
    size: int = 0
    newest_window_end_ns: int = 0


@dataclass(slots=True)
class SpoolStats:
    batches_dropped: int = 0
    observations_dropped: int = 0
    recovered_batches: int = 0


def _meta_of(batch: up.ObservationBatch) -> RecordMeta:
    starts = [o.start_unix_ns for o in batch.observations]
    return RecordMeta(
        sequence=batch.sequence,
        observations=len(starts),
        first_start_ns=min(starts, default=0),
        last_start_ns=max(starts, default=0),
        window_start_ns=batch.window_start_unix_ns,
        window_end_ns=batch.window_end_unix_ns,
        has_drops=bool(batch.spool_drops),
    )


def _encode(meta: RecordMeta, payload: bytes) -> bytes:
    body = (
        _META.pack(
            meta.sequence, meta.observations, meta.first_start_ns, meta.last_start_ns,
            meta.window_start_ns, meta.window_end_ns, int(meta.has_drops),
        )
        + payload
    )  # fmt: skip
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def read_records(path: Path, offset: int = 0) -> Iterator[tuple[int, RecordMeta, bytes]]:
    """(offset, meta, payload) of each intact record from ``offset`` on; stops at the
    first bad one (a torn tail)."""
    with path.open("rb") as file:
        file.seek(offset)
        while True:
            frame = file.read(_FRAME.size)
            if len(frame) < _FRAME.size:
                return
            length, crc = _FRAME.unpack(frame)
            if not _META.size <= length <= MAX_RECORD:
                return
            body = file.read(length)
            if len(body) < length or zlib.crc32(body) != crc:
                return
            sequence, count, first, last, window_start, window_end, drops = _META.unpack_from(body)
            meta = RecordMeta(
                sequence, count, first, last, window_start, window_end, has_drops=bool(drops)
            )
            yield offset, meta, body[_META.size :]
            offset += _FRAME.size + length


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", encoding="ascii") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Append, read in order, ack, and bound the batches on their way to the collector."""

    def __init__(self, directory: Path, bounds: SpoolBounds) -> None:
        self.directory = directory
        self.bounds = bounds
        self.stats = SpoolStats()
        self._lock_fd = self._lock(directory)
        try:
            self.epoch = self._read_or_make_epoch()
            self._acked = self._read_int("acked")
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._acked_on_disk = self._acked
        self._acked_ahead: set[int] = set()
        self._segments: list[_Segment] = []
        self._pending_drops: list[up.SpoolDrop] = []
        # Dropped segments whose report is not on disk yet (a write failed).
        self._doomed: list[_Segment] = []
        self._active: int | None = None  # fd of the last segment, open for append
        self._recover()
        last = self._segments[-1].last_sequence if self._segments else 0
        self._next_sequence = max(last, self._acked) + 1
        # The read cursor: the next sequence to hand out for sending, and where
        # in which segment the last read stopped (so reads do not rescan).
        self._cursor = self._acked + 1
        self._hint: tuple[Path | None, int, int] = (None, 0, 0)

    # -- opening ----------------------------------------------------------

    @staticmethod
    def _lock(directory: Path) -> int:
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            (directory / "rejected").mkdir(exist_ok=True, mode=0o700)
            fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SpoolError(f"spool {directory}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolError(f"spool {directory} is in use by another agent") from None
        return fd

    def _read_int(self, name: str) -> int:
        path = self.directory / name
        try:
            return int(path.read_text(encoding="ascii").strip() or 0)
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            raise SpoolError(f"spool file {path} is unreadable: {exc}") from None

    def _read_or_make_epoch(self) -> int:
        epoch = self._read_int("epoch")
        if epoch > 0:
            return epoch
        if any(self.directory.glob(f"*{SEGMENT_SUFFIX}")):
            # Batches without their epoch can be neither resent (they might be
            # stored already) nor dropped silently: a person has to decide.
            raise SpoolError(
                f"spool {self.directory} has batches but no epoch file; move the folder "
                "aside (its batches cannot be sent) and start again"
            )
        # A new spool: a fresh epoch keeps (agent, epoch, sequence) unique.
        epoch = time.time_ns()
        _write_atomically(self.directory / "epoch", f"{epoch}\n")
        (self.directory / "acked").unlink(missing_ok=True)
        return epoch

    def _recover(self) -> None:
        """Rebuild the segment list; cut torn tails; finish interrupted drops and deletes."""
        dropped_ranges: list[tuple[int, int]] = []
        for path in sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}")):
            segment = self._scan(path, dropped_ranges)
            if segment is not None:
                self._segments.append(segment)
        # Drops remove whole segments, so a segment that overlaps a reported
        # range was being dropped when the agent stopped: finish that.
        for first, last in dropped_ranges:
            self._segments = [
                s for s in self._segments
                if not (s.first_sequence <= last and first <= s.last_sequence and _unlink(s))
            ]  # fmt: skip
        self._delete_acked_segments()
        self.stats.recovered_batches = self.unacked_batches

    def _scan(self, path: Path, dropped_ranges: list[tuple[int, int]]) -> _Segment | None:
        try:
            first = int(path.name.removesuffix(SEGMENT_SUFFIX))
        except ValueError:
            log.warning("spool: ignoring unexpected file %s", path)
            return None
        segment = _Segment(path, first, last_sequence=first - 1)
        for offset, meta, payload in read_records(path):
            segment.last_sequence = meta.sequence
            segment.size = offset + _FRAME.size + _META.size + len(payload)
            segment.newest_window_end_ns = max(segment.newest_window_end_ns, meta.window_end_ns)
            if meta.has_drops:
                batch = up.ObservationBatch.FromString(payload)
                dropped_ranges += [(d.first_sequence, d.last_sequence) for d in batch.spool_drops]
        actual = path.stat().st_size
        if actual > segment.size:
            # A torn append (the agent died mid-write): its batch was never sent.
            log.warning("spool: %s: cutting %d bytes of a torn record", path.name,
                        actual - segment.size)  # fmt: skip
            os.truncate(path, segment.size)
        if segment.size == 0:
            path.unlink()
            return None
        return segment

    # -- writing ----------------------------------------------------------

    def append(self, batch: up.ObservationBatch) -> int:
        """Seal the batch (its observations and window filled in) as the next one,
        durably: its sequence and pending drop reports are set here. Returns the
        sequence."""
        batch.sequence = self._next_sequence
        window_end_ns = batch.window_end_unix_ns
        del batch.spool_drops[:]
        record_size = batch.ByteSize() + _FRAME.size + _META.size
        self._doomed += self._choose_drops(record_size, window_end_ns)
        self._pending_drops = merge_drops(self._pending_drops)
        reports = self._pending_drops[:MAX_DROPS_PER_BATCH]
        batch.spool_drops.extend(reports)
        meta = _meta_of(batch)
        record = _encode(meta, batch.SerializeToString())
        self._write(record, meta)
        del self._pending_drops[: len(reports)]  # the rest go with the next batches
        # Only now that the reports are on disk may the dropped segments go.
        for segment in self._doomed:
            _unlink(segment)
        self._doomed.clear()
        self._next_sequence += 1
        return batch.sequence

    def _write(self, record: bytes, meta: RecordMeta) -> None:
        segment = self._segments[-1] if self._segments else None
        if segment is None or segment.size >= self.bounds.segment_bytes:
            segment = self._new_segment(meta.sequence)
        elif self._active is None:  # reopened after a restart
            self._active = self._open_segment(segment.path)
        assert self._active is not None
        try:
            written = os.write(self._active, record)
            if written != len(record):  # a full disk may write part without an error
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(record)} bytes)")
            os.fsync(self._active)
        except OSError as exc:
            # Cut back what may have been half-written: the segment stays readable.
            with contextlib.suppress(OSError):
                os.ftruncate(self._active, segment.size)
            raise SpoolError(f"spool {segment.path}: cannot write: {exc.strerror}") from None
        segment.size += len(record)
        segment.last_sequence = meta.sequence
        segment.newest_window_end_ns = max(segment.newest_window_end_ns, meta.window_end_ns)

    def _new_segment(self, first_sequence: int) -> _Segment:
        self._close_active()
        path = self.directory / f"{first_sequence:020d}{SEGMENT_SUFFIX}"
        self._active = self._open_segment(path)
        segment = _Segment(path, first_sequence, last_sequence=first_sequence - 1)
        self._segments.append(segment)
        return segment

    def _open_segment(self, path: Path) -> int:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            _fsync_dir(self.directory)  # the new name itself must survive a crash
        except OSError as exc:
            raise SpoolError(f"spool {path}: cannot open for writing: {exc.strerror}") from None
        return fd

    def _close_active(self) -> None:
        if self._active is not None:
            os.close(self._active)
            self._active = None

    # -- bounds -----------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    def _choose_drops(self, incoming: int, now_ns: int) -> list[_Segment]:
        """Take the segments a bound forces out of the list, noting a drop report for each."""
        doomed: list[_Segment] = []
        oldest_allowed = now_ns - int(self.bounds.max_age * 1e9)
        while self._segments:
            oldest = self._segments[0]
            if 0 < oldest.newest_window_end_ns < oldest_allowed:
                reason = up.SpoolDrop.REASON_AGE
            elif self.size_bytes + incoming > self.bounds.max_bytes:
                reason = up.SpoolDrop.REASON_SIZE
            else:
                break
            doomed.append(self._pop_oldest())
            self._pending_drops += self._drop_report(oldest, reason)
        return doomed

    def _pop_oldest(self) -> _Segment:
        if len(self._segments) == 1:
            self._close_active()  # it was the segment being appended to
        return self._segments.pop(0)

    def _drop_report(self, segment: _Segment, reason: up.SpoolDrop.Reason) -> list[up.SpoolDrop]:
        """What dropping this segment loses, as runs of consecutive unacked batches;
        drop reports those batches carried are carried forward."""
        runs: list[up.SpoolDrop] = []
        for _offset, meta, payload in read_records(segment.path):
            if self._is_acked(meta.sequence):
                continue
            if meta.has_drops:
                carried = up.ObservationBatch.FromString(payload).spool_drops
                self._pending_drops.extend(carried)
            if not runs or runs[-1].last_sequence + 1 != meta.sequence:
                runs.append(up.SpoolDrop(reason=reason, dropped_unix_ns=time.time_ns()))
            _extend_drop(runs[-1], meta)
        for drop in runs:
            self.stats.batches_dropped += drop.batches
            self.stats.observations_dropped += drop.observations
            log.warning(
                "spool over its %s bound: dropped batches %d-%d (%d observations) unsent",
                "age" if reason == up.SpoolDrop.REASON_AGE else "size",
                drop.first_sequence, drop.last_sequence, drop.observations,
            )  # fmt: skip
        return runs

    # -- reading and acking -------------------------------------------------

    def rewind(self) -> None:
        """Start reading again at the first unacked batch (after a reconnect)."""
        self._cursor = self._acked + 1

    def read_next(self, limit: int) -> list[up.ObservationBatch]:
        """Up to ``limit`` batches from the cursor on, in sequence order."""
        batches: list[up.ObservationBatch] = []
        for segment in self._segments:
            if segment.last_sequence < self._cursor:
                continue
            start = 0
            if self._hint[0] == segment.path and self._hint[1] == self._cursor:
                start = self._hint[2]  # continue where the last read stopped
            for offset, meta, payload in read_records(segment.path, start):
                if meta.sequence < self._cursor or self._is_acked(meta.sequence):
                    continue
                batches.append(up.ObservationBatch.FromString(payload))
                self._cursor = meta.sequence + 1
                next_offset = offset + _FRAME.size + _META.size + len(payload)
                self._hint = (segment.path, self._cursor, next_offset)
                if len(batches) >= limit:
                    return batches
        # Sequences in dropped segments are gone: skip past them.
        self._cursor = max(self._cursor, self._next_sequence)
        return batches

    @property
    def next_sequence(self) -> int:
        return self._next_sequence

    @property
    def has_unread(self) -> bool:
        return self._cursor < self._next_sequence

    @property
    def unacked_batches(self) -> int:
        spooled = sum(
            max(0, s.last_sequence - max(s.first_sequence, self._acked + 1) + 1)
            for s in self._segments
        )
        return spooled - sum(1 for s in self._acked_ahead if not self._is_gap(s))

    def ack(self, sequence: int) -> None:
        """The collector has this batch (stored or refused): it may go."""
        if sequence <= self._acked:
            return
        self._acked_ahead.add(sequence)
        while True:
            following = self._acked + 1
            if following in self._acked_ahead:
                self._acked = following
                self._acked_ahead.discard(following)
            elif self._is_gap(following):
                self._acked = self._end_of_gap(following)
            else:
                break
        self._acked_ahead = {s for s in self._acked_ahead if s > self._acked}
        self._delete_acked_segments()

    def _end_of_gap(self, sequence: int) -> int:
        """The last sequence of the gap (dropped batches) that starts at ``sequence``."""
        later = [s.first_sequence for s in self._segments if s.first_sequence > sequence]
        return min(later, default=self._next_sequence) - 1

    def _is_acked(self, sequence: int) -> bool:
        return sequence <= self._acked or sequence in self._acked_ahead

    def _is_gap(self, sequence: int) -> bool:
        """A sequence in no segment (dropped, or never written) needs no ack."""
        if sequence >= self._next_sequence:
            return False
        return not any(s.first_sequence <= sequence <= s.last_sequence for s in self._segments)

    def set_aside(self, batch: up.ObservationBatch, reason: str) -> Path:
        """Keep a refused batch for inspection, then treat it as acked."""
        path = self.directory / "rejected" / f"{self.epoch}-{batch.sequence:020d}.batch"
        try:
            path.write_bytes(batch.SerializeToString())
            path.with_suffix(".reason").write_text(reason + "\n", encoding="utf-8")
        except OSError as exc:
            log.error("spool: cannot keep rejected batch %d: %s", batch.sequence, exc.strerror)
        # Nothing of it reaches the store: its own drop reports go with the next
        # batch, and so does a report of it, so the gap it leaves is explained.
        self._pending_drops.extend(batch.spool_drops)
        refused = up.SpoolDrop(reason=up.SpoolDrop.REASON_REJECTED, dropped_unix_ns=time.time_ns())
        _extend_drop(refused, _meta_of(batch))
        self._pending_drops.append(refused)
        self.ack(batch.sequence)
        return path

    def _delete_acked_segments(self) -> None:
        while self._segments and self._segments[0].last_sequence <= self._acked:
            if len(self._segments) == 1 and self._segments[0].size < self.bounds.segment_bytes:
                break  # still being appended to
            # The watermark first: with no segment left, it is what keeps the
            # next start from reusing the deleted batches' sequences.
            self._save_acked()
            _unlink(self._pop_oldest())

    def _save_acked(self) -> None:
        if self._acked != self._acked_on_disk:
            _write_atomically(self.directory / "acked", f"{self._acked}\n")
            self._acked_on_disk = self._acked

    def close(self) -> None:
        """Persist the ack watermark and release the spool."""
        with contextlib.suppress(OSError):
            self._save_acked()
        self._close_active()
        os.close(self._lock_fd)


def merge_drops(drops: Sequence[up.SpoolDrop]) -> list[up.SpoolDrop]:
    """Reports of touching sequence ranges with the same reason, as one report each
    (a spool that turns over many times still sends few reports)."""
    merged: list[up.SpoolDrop] = []
    for drop in sorted(drops, key=lambda d: d.first_sequence):
        last = merged[-1] if merged else None
        if (
            last is None
            or last.reason != drop.reason
            or last.last_sequence + 1 < drop.first_sequence
        ):
            merged.append(up.SpoolDrop())
            merged[-1].CopyFrom(drop)
            continue
        _absorb(last, drop)
    return merged


def _absorb(into: up.SpoolDrop, drop: up.SpoolDrop) -> None:
    into.last_sequence = max(into.last_sequence, drop.last_sequence)
    into.batches += drop.batches
    into.dropped_unix_ns = max(into.dropped_unix_ns, drop.dropped_unix_ns)
    into.window_end_unix_ns = max(into.window_end_unix_ns, drop.window_end_unix_ns)
    if drop.observations:
        starts = [drop.first_start_unix_ns] + (
            [into.first_start_unix_ns] if into.observations else []
        )
        into.first_start_unix_ns = min(starts)
        into.last_start_unix_ns = max(into.last_start_unix_ns, drop.last_start_unix_ns)
        into.observations += drop.observations


def _extend_drop(drop: up.SpoolDrop, meta: RecordMeta) -> None:
    if drop.batches == 0:
        drop.first_sequence = meta.sequence
        drop.window_start_unix_ns = meta.window_start_ns
    drop.last_sequence = meta.sequence
    drop.window_end_unix_ns = meta.window_end_ns
    drop.batches += 1
    if meta.observations:
        if drop.observations == 0:
            drop.first_start_unix_ns = meta.first_start_ns
        drop.first_start_unix_ns = min(drop.first_start_unix_ns, meta.first_start_ns)
        drop.last_start_unix_ns = max(drop.last_start_unix_ns, meta.last_start_ns)
        drop.observations += meta.observations


def _unlink(segment: _Segment) -> bool:
    with contextlib.suppress(FileNotFoundError):
        segment.path.unlink()
    return True
