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
from slawatch.v1 import observation_pb2 as pb

log = logging.getLogger(__name__)

# The collector refuses messages over 4 MiB; a batch stays well under that.
MAX_BATCH_BYTES = 3 << 20
# Observations held while the spool cannot be written (disk full ...).
MAX_PENDING = 100_000


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
        self._pending: list[pb.Observation] = []
        self._window_start_ns = time.time_ns()
        self.observations_spooled = 0
        # Lost before reaching the disk (the spool could not be written for long).
        self.observations_lost = 0

    def put(self, observation: Observation) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._pending.pop(0)
            self.observations_lost += 1
        self._pending.append(observation.to_wire())
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
        while self._pending:
            chunk = self._next_chunk()
            try:
                sequence = self._spool.append(chunk, self._window_start_ns, now)
            except SpoolError as exc:
                log.error("%s; keeping %d observations in memory", exc, len(self._pending))
                return
            del self._pending[: len(chunk)]
            self._window_start_ns = now
            self.observations_spooled += len(chunk)
            self._write_audit(chunk, sequence)
            self._on_sealed()

    def _next_chunk(self) -> list[pb.Observation]:
        """The longest prefix within batch_max observations and MAX_BATCH_BYTES."""
        size = 0
        for index, message in enumerate(self._pending[: self._batch_max]):
            size += message.ByteSize() + 8  # field tag and length prefix
            if size > MAX_BATCH_BYTES and index > 0:
                return self._pending[:index]
        return self._pending[: self._batch_max]

    def _write_audit(self, chunk: list[pb.Observation], sequence: int) -> None:
        """One line per observation: what the agent produced, to compare with the collector."""
        if self._audit is None:
            return
        epoch = self._spool.epoch
        self._audit.writelines(
            f"{epoch}\t{sequence}\t{o.check_id}\t{o.start_unix_ns}\n" for o in chunk
        )
        self._audit.flush()
