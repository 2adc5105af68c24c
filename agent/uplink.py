"""Streams observations to the collector over one gRPC bidi stream, with acks.

Batches get strictly increasing sequence numbers within this process's
sequence epoch. A batch is forgotten only when the collector acks it; after a
reconnect every unacked batch is resent, in order, flagged ``replayed``. The
collector deduplicates by (agent, epoch, sequence), so a lost ack never
stores a batch twice.

While the collector is unreachable, observations wait in a bounded memory
buffer; when it is full the oldest are dropped and counted. (A durable
on-disk spool replaces this buffer later; the interface stays the same.)
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from agent import __version__
from agent.config import AgentConfig
from agent.errors import UplinkError
from agent.host import boot_id
from agent.observation import Observation
from slawatch.v1 import uplink_pb2 as up
from slawatch.v1 import uplink_pb2_grpc as up_grpc

log = logging.getLogger(__name__)

UplinkCall = grpc.aio.StreamStreamCall[up.AgentMessage, up.CollectorMessage]

MAX_IN_FLIGHT = 16
# The collector refuses messages over 4 MiB; a batch stays well under that.
MAX_BATCH_BYTES = 3 << 20
# Codes that mean "this agent is not welcome": retrying would not help.
_PERMANENT = (
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.INVALID_ARGUMENT,
)
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


class ObservationBuffer:
    """Observations not yet batched; bounded, dropping (and counting) the oldest.

    The uplink sends a batch when ``batch_size`` observations are waiting or
    when its flush interval has passed, whichever comes first.
    """

    def __init__(self, max_items: int, batch_size: int) -> None:
        self._items: collections.deque[Observation] = collections.deque()
        self._max = max_items
        self._batch_size = batch_size
        self._batch_ready = asyncio.Event()
        self.dropped = 0

    def put(self, observation: Observation) -> None:
        if len(self._items) >= self._max:
            self._items.popleft()
            self.dropped += 1
        self._items.append(observation)
        if len(self._items) >= self._batch_size:
            self._batch_ready.set()

    def put_back(self, observations: list[Observation]) -> None:
        """Return observations taken but not sent, to the front, in order."""
        self._items.extendleft(reversed(observations))
        if len(self._items) >= self._batch_size:
            self._batch_ready.set()

    def take(self, limit: int) -> list[Observation]:
        taken = [self._items.popleft() for _ in range(min(limit, len(self._items)))]
        if len(self._items) < self._batch_size:
            self._batch_ready.clear()
        return taken

    def __len__(self) -> int:
        return len(self._items)

    def wake(self) -> None:
        """End a pending ``wait_for_batch`` now (used when stopping)."""
        self._batch_ready.set()

    async def wait_for_batch(self, timeout: float) -> None:
        """Return once a full batch is waiting, or after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._batch_ready.wait()
        except TimeoutError:
            pass


@dataclass(slots=True)
class UplinkStats:
    connected: bool = False
    sessions: int = 0
    batches_sent: int = 0
    observations_sent: int = 0
    observations_acked: int = 0
    batches_rejected: int = 0


class Uplink:
    def __init__(
        self,
        config: AgentConfig,
        buffer: ObservationBuffer,
        heartbeat: Callable[[], up.Heartbeat],
    ) -> None:
        self._config = config
        self._buffer = buffer
        self._heartbeat = heartbeat
        self._epoch = time.time_ns()
        self._started_ns = time.time_ns()
        self._next_sequence = 1
        self._unacked: dict[int, up.ObservationBatch] = {}
        self._acked = asyncio.Event()
        self._stopping = False
        self.stats = UplinkStats()

    @property
    def idle(self) -> bool:
        """Nothing waits to be sent or acked."""
        return not self._unacked and not len(self._buffer)

    async def run(self) -> None:
        """Keep a session to the collector up until cancelled or stopped."""
        backoff = BACKOFF_INITIAL
        while not (self._stopping and self.idle):
            try:
                await self._session()
                backoff = BACKOFF_INITIAL
            except grpc.aio.AioRpcError as exc:
                if exc.code() in _PERMANENT:
                    raise UplinkError(f"collector refused this agent: {exc.details()}") from None
                log.warning(
                    "collector %s: %s (%s)",
                    self._config.collector.address,
                    exc.code().name,
                    exc.details(),
                )
            except (ConnectionError, asyncio.InvalidStateError) as exc:
                # grpc.aio raises InvalidStateError for a write after the RPC ended,
                # e.g. when the collector went away between two writes.
                log.warning("collector %s: %s", self._config.collector.address, exc)
            finally:
                self.stats.connected = False
            if self._stopping and self.idle:
                return
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(BACKOFF_MAX, backoff * 2)

    async def stop(self, timeout: float) -> bool:
        """Send what is buffered and wait for its acks, at most ``timeout`` seconds."""
        self._stopping = True
        self._buffer.wake()
        try:
            async with asyncio.timeout(timeout):
                while not self.idle:
                    self._acked.clear()
                    await self._acked.wait()
        except TimeoutError:
            log.warning(
                "stopping with %d unacked batches, %d observations unsent",
                len(self._unacked),
                len(self._buffer),
            )
        return self.idle

    def _hello(self) -> up.AgentMessage:
        hello = up.Hello(
            agent_id=self._config.agent_id,
            software_version=__version__,
            labels=self._config.labels,
            boot_id=boot_id(),
            sequence_epoch=self._epoch,
            started_unix_ns=self._started_ns,
            hostname=socket.gethostname(),
        )
        return up.AgentMessage(hello=hello)

    def _channel(self) -> grpc.aio.Channel:
        """A channel to the collector; certificates are read anew at every connect,
        so renewed ones take effect without a restart."""
        collector = self._config.collector
        if collector.tls is None:
            return grpc.aio.insecure_channel(collector.address, options=CHANNEL_OPTIONS)
        tls = collector.tls
        try:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=Path(tls.ca_file).read_bytes(),
                private_key=Path(tls.key_file).read_bytes(),
                certificate_chain=Path(tls.cert_file).read_bytes(),
            )
        except OSError as exc:
            raise UplinkError(f"cannot read {exc.filename}: {exc.strerror}") from None
        options: list[tuple[str, str | int]] = list(CHANNEL_OPTIONS)
        if tls.server_name:
            options.append(("grpc.ssl_target_name_override", tls.server_name))
        return grpc.aio.secure_channel(collector.address, credentials, options=options)

    async def _session(self) -> None:
        address = self._config.collector.address
        async with self._channel() as channel:
            call = up_grpc.UplinkStub(channel).Stream()  # type: ignore[no-untyped-call]
            await call.write(self._hello())
            first = await call.read()
            if not isinstance(first, up.CollectorMessage) or not first.HasField("hello_ack"):
                raise ConnectionResetError("collector closed the stream before its hello ack")
            self.stats.connected = True
            self.stats.sessions += 1
            log.info("connected to collector %s", address)
            reader = asyncio.create_task(self._read_acks(call))
            try:
                await self._write_batches(call, reader)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
                call.cancel()

    async def _write_batches(self, call: UplinkCall, reader: asyncio.Task[None]) -> None:
        collector = self._config.collector
        for batch in list(self._unacked.values()):
            batch.replayed = True
            await call.write(up.AgentMessage(batch=batch))
        next_heartbeat = time.monotonic()
        while not reader.done():
            if time.monotonic() >= next_heartbeat:
                await call.write(up.AgentMessage(heartbeat=self._heartbeat()))
                next_heartbeat = time.monotonic() + collector.heartbeat_interval
            if len(self._unacked) >= MAX_IN_FLIGHT:
                self._acked.clear()
                await _wait_either(self._acked.wait(), reader, collector.flush_interval)
                continue
            if not self._stopping:
                await self._buffer.wait_for_batch(collector.flush_interval)
            observations = self._buffer.take(collector.batch_max)
            if observations:
                await call.write(up.AgentMessage(batch=self._new_batch(observations)))
            elif self._stopping and not self._unacked:
                await call.done_writing()
                return
            elif self._stopping:
                self._acked.clear()
                await _wait_either(self._acked.wait(), reader, collector.flush_interval)
        reader.result()  # re-raise the reader's error, if any

    def _new_batch(self, observations: list[Observation]) -> up.ObservationBatch:
        """A batch of the observations that fit in MAX_BATCH_BYTES; the rest go back."""
        batch = up.ObservationBatch(sequence=self._next_sequence)
        size = 0
        for index, observation in enumerate(observations):
            message = observation.to_wire()
            size += message.ByteSize() + 8  # field tag and length prefix
            if size > MAX_BATCH_BYTES and index > 0:
                self._buffer.put_back(observations[index:])
                observations = observations[:index]
                break
            batch.observations.append(message)
        self._unacked[self._next_sequence] = batch
        self._next_sequence += 1
        self.stats.batches_sent += 1
        self.stats.observations_sent += len(observations)
        return batch

    async def _read_acks(self, call: UplinkCall) -> None:
        while True:
            message = await call.read()
            if not isinstance(message, up.CollectorMessage):  # grpc.aio.EOF
                raise ConnectionResetError("collector closed the stream")
            if not message.HasField("batch_ack"):
                continue
            ack = message.batch_ack
            batch = self._unacked.pop(ack.sequence, None)
            if batch is None:
                continue
            if ack.status == up.BatchAck.STATUS_REJECTED:
                self.stats.batches_rejected += 1
                log.error("collector rejected batch %d: %s", ack.sequence, ack.reason)
            else:
                self.stats.observations_acked += len(batch.observations)
            self._acked.set()


async def _wait_either(
    awaitable: collections.abc.Coroutine[object, object, object],
    task: asyncio.Task[None],
    timeout: float,
) -> None:
    waiter = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait({waiter, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
