"""Seals finished observations into batches in the durable spool.

The scheduler hands every finished round to ``Outbox.put``; at least every
``flush_interval`` (or as soon as ``batch_max`` wait) they are sealed into a
batch and appended to the spool, fsync'ed, before the uplink may send them.
Probing never waits for the collector: the only thing between a round and
the disk is this in-memory list of at most a flush interval's worth.

Each batch carries the window ``[previous seal, this seal)``: the agent was
running throughout, and every observation finished in it is in the batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TextIO

from agent.errors import SpoolError
from agent.observation import Observation
from agent.spool import Spool
from slawatch.v1 import uplink_pb2 as up

log = logging.getLogger(__name__)

# The collector refuses messages over 4 MiB; a batch stays well under that.
MAX_BATCH_BYTES = 3 << 20
# Observations held while the spool cannot be written (disk full ...).
MAX_PENDING = 100_000
# The collector refuses a batch window longer than a day.
MAX_WINDOW_NS = 23 * 3600 * 10**9


class Outbox:
    def __init__(
        self,
        spool: Spool,
        batch_max: int,
        flush_interval: float,
        on_sealed: Callable[[], None],
        audit: TextIO | None = None,
    ) -> None:
        self._spool = spool
        self._batch_max = batch_max
        self._flush_interval = flush_interval
        self._on_sealed = on_sealed
        self._audit = audit
        # Kept as dataclasses until sealed: a protobuf message each would cost
        # more memory while they wait (the agent's budget is 50 MB).
        self._pending: list[Observation] = []
        self._window_start_ns = time.time_ns()
        self.observations_spooled = 0
        # Lost before reaching the disk (the spool could not be written for long).
        self.observations_lost = 0

    def put(self, observation: Observation) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._pending.pop(0)
            self.observations_lost += 1
        self._pending.append(observation)
        if len(self._pending) >= self._batch_max:
            self.seal()

    async def run(self) -> None:
        """Seal what is pending every flush interval, until cancelled."""
        while True:
            await asyncio.sleep(self._flush_interval)
            self.seal()

    def seal(self) -> None:
        """Append everything pending to the spool, in batches; keep it on failure."""
        now = time.time_ns()
        # A clock stepped back, or a day without results: keep the window one
        # the collector accepts (start <= end, at most a day) rather than lose
        # the batch; coverage then shows a gap where the agent cannot vouch.
        start = min(max(self._window_start_ns, now - MAX_WINDOW_NS), now)
        while self._pending:
            batch = self._next_batch(start, now)
            count = len(batch.observations)
            try:
                sequence = self._spool.append(batch)
            except SpoolError as exc:
                log.error("%s; keeping %d observations in memory", exc, len(self._pending))
                return
            self._write_audit(self._pending[:count], sequence)
            del self._pending[:count]
            self._window_start_ns = start = now
            self.observations_spooled += count
            self._on_sealed()

    def _next_batch(self, start_ns: int, end_ns: int) -> up.ObservationBatch:
        """A batch of the longest prefix within batch_max and MAX_BATCH_BYTES."""
        batch = up.ObservationBatch(window_start_unix_ns=start_ns, window_end_unix_ns=end_ns)
        size = 0
        for observation in self._pending[: self._batch_max]:
            message = observation.to_wire(batch.observations.add())
            size += message.ByteSize() + 8  # field tag and length prefix
            if size > MAX_BATCH_BYTES and len(batch.observations) > 1:
                del batch.observations[-1]
                break
        return batch

    def _write_audit(self, chunk: list[Observation], sequence: int) -> None:
        """One line per observation: what the agent produced, to compare with the collector."""
        if self._audit is None:
            return
        epoch = self._spool.epoch
        self._audit.writelines(
            f"{epoch}\t{sequence}\t{o.check_id}\t{o.start_unix_ns}\n" for o in chunk
        )
        self._audit.flush()
