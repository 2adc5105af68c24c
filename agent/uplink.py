"""Streams spooled batches to the collector over one gRPC bidi stream, with acks.

Batches come from the durable spool (``agent.spool``) in sequence order. A
batch leaves the spool only when the collector acks it (stored, duplicate, or
rejected: a rejected batch is kept aside in ``spool.dir/rejected`` and not
resent). After a reconnect, or a restart, sending starts again at the first
unacked batch, flagged ``replayed``; the collector stores each
(agent, epoch, sequence) once, so a lost ack never stores a batch twice.

At most ``MAX_IN_FLIGHT`` batches are unacked on the stream: a slow collector
slows sending, and the spool absorbs the difference; probing never waits.

The stream also carries the collector's configuration pushes; the agent
answers each with a ``ConfigStatus``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from agent import __version__
from agent.config import AgentConfig
from agent.errors import UplinkError
from agent.host import boot_id
from agent.spool import Spool
from slawatch.v1 import uplink_pb2 as up
from slawatch.v1 import uplink_pb2_grpc as up_grpc

log = logging.getLogger(__name__)

UplinkCall = grpc.aio.StreamStreamCall[up.AgentMessage, up.CollectorMessage]

MAX_IN_FLIGHT = 16
# Codes worth retrying (with backoff): the collector or the path is down or
# busy, or failed in passing. Anything else (PERMISSION_DENIED, INVALID_ARGUMENT,
# FAILED_PRECONDITION, UNIMPLEMENTED ...) means this agent or this version is
# not welcome, and retrying would not help: the agent exits and says why.
RETRYABLE = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
})  # fmt: skip
# Failed connects, with no session yet, before the log says what to check.
HINT_AFTER_FAILURES = 3
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
# A session counts as healthy, and the backoff starts again at BACKOFF_INITIAL after it,
# once the collector has acked a batch on it or it has stayed up this long. A hello ack
# alone is not enough: a collector that takes the hello and then fails every stream
# (its store failing, say) must not get every agent back twice a second.
HEALTHY_SESSION = 5.0
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


@dataclass(slots=True)
class UplinkStats:
    connected: bool = False
    sessions: int = 0
    batches_sent: int = 0
    observations_sent: int = 0
    observations_acked: int = 0
    batches_rejected: int = 0


ConfigHandler = Callable[[up.ConfigPush], up.ConfigStatus]


class Uplink:
    def __init__(
        self,
        config: AgentConfig,
        spool: Spool,
        heartbeat: Callable[[], up.Heartbeat],
        on_config: ConfigHandler | None = None,
        config_version: Callable[[], str] = lambda: "",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        # The backoff's waits and the session's age (a seam for tests).
        self._sleep = sleep
        self._clock = clock
        self._session_started: float | None = None
        self._session_acked = False
        self._spool = spool
        self._heartbeat = heartbeat
        self._on_config = on_config
        self._config_version = config_version
        self._started_ns = time.time_ns()
        # Batches recovered from an earlier run count as resent.
        self._sent_up_to = spool.next_sequence - 1
        self._in_flight: dict[int, up.ObservationBatch] = {}
        self._control: list[up.AgentMessage] = []
        self._wake = asyncio.Event()
        self._acked = asyncio.Event()
        self._stopping = False
        self.stats = UplinkStats()

    def notify(self) -> None:
        """A batch was spooled (or something else is ready to send)."""
        self._wake.set()

    @property
    def idle(self) -> bool:
        """Every spooled batch is acked."""
        return self._spool.unacked_batches == 0

    async def run(self) -> None:
        """Keep a session to the collector up until cancelled or stopped."""
        backoff = BACKOFF_INITIAL
        failures = 0
        while not (self._stopping and self.idle):
            self._session_started = None
            self._session_acked = False
            try:
                await self._session()
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE:
                    raise UplinkError(
                        f"collector refused this agent: {exc.details()} ({exc.code().name})"
                    ) from None
                log.warning(
                    "collector %s: %s (%s)",
                    self._config.collector.address,
                    exc.code().name,
                    exc.details(),
                )
                failures += 1
                if failures == HINT_AFTER_FAILURES and self.stats.sessions == 0:
                    self._hint_never_connected()
            except (ConnectionError, asyncio.InvalidStateError) as exc:
                # grpc.aio raises InvalidStateError for a write after the RPC ended,
                # e.g. when the collector went away between two writes.
                log.warning("collector %s: %s", self._config.collector.address, exc)
            finally:
                self.stats.connected = False
            if self._stopping and self.idle:
                return
            if self._session_was_healthy():
                # This outage is a new one: start again from the shortest wait.
                backoff = BACKOFF_INITIAL
                failures = 0
            await self._sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(BACKOFF_MAX, backoff * 2)

    def _session_was_healthy(self) -> bool:
        """The last session was established (hello acked) and then had a batch acked or
        stayed up for HEALTHY_SESSION seconds."""
        if self._session_started is None:
            return False
        return self._session_acked or self._clock() - self._session_started >= HEALTHY_SESSION

    def _established(self) -> None:
        """The collector acked the hello: a session is up."""
        self._session_started = self._clock()
        self.stats.connected = True
        self.stats.sessions += 1

    def _hint_never_connected(self) -> None:
        """A TLS refusal looks like an unreachable collector; say what to check."""
        if self._config.collector.tls is None:
            hint = "if it runs with --tls-dir, it refuses plaintext agents: configure collector.tls"
        else:
            hint = (
                "if it is up, check collector.tls: ca_file must be the collector's CA, and this "
                "agent's certificate must be issued by it (`slawatch-collector pki issue`)"
            )
        log.error("no session with collector %s after %d attempts; %s",
                  self._config.collector.address, HINT_AFTER_FAILURES, hint)  # fmt: skip

    async def stop(self, timeout: float) -> bool:
        """Send what is spooled and wait for its acks, at most ``timeout`` seconds.

        What is still unacked then stays in the spool for the next start."""
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self.idle:
                    self._acked.clear()
                    await self._acked.wait()
        if not self.idle:
            log.warning(
                "stopping with %d batches unacked; they stay in the spool %s",
                self._spool.unacked_batches,
                self._spool.directory,
            )
        return self.idle

    def _hello(self) -> up.AgentMessage:
        hello = up.Hello(
            agent_id=self._config.agent_id,
            software_version=__version__,
            labels=self._config.labels,
            boot_id=boot_id(),
            sequence_epoch=self._spool.epoch,
            started_unix_ns=self._started_ns,
            hostname=socket.gethostname(),
            config_version=self._config_version(),
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
            self._established()
            log.info("connected to collector %s", address)
            # Whatever was in flight on an earlier stream is sent again, from disk.
            self._in_flight.clear()
            self._spool.rewind()
            reader = asyncio.create_task(self._read(call))
            try:
                await self._write(call, reader)
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
                call.cancel()

    async def _write(self, call: UplinkCall, reader: asyncio.Task[None]) -> None:
        heartbeat_interval = self._config.collector.heartbeat_interval
        resend_up_to = self._sent_up_to
        next_heartbeat = time.monotonic()
        while not reader.done():
            self._wake.clear()
            while self._control:
                await call.write(self._control.pop(0))
            if time.monotonic() >= next_heartbeat:
                await call.write(up.AgentMessage(heartbeat=self._heartbeat()))
                next_heartbeat = time.monotonic() + heartbeat_interval
            room = MAX_IN_FLIGHT - len(self._in_flight)
            if room > 0 and self._spool.has_unread:
                for batch in self._spool.read_next(room):
                    await self._send(call, batch, replayed=batch.sequence <= resend_up_to)
                continue
            if self._stopping and self.idle:
                await call.done_writing()
                return
            await _wait_either(self._wake, reader, max(0.01, next_heartbeat - time.monotonic()))
        reader.result()  # re-raise the reader's error, if any

    async def _send(self, call: UplinkCall, batch: up.ObservationBatch, replayed: bool) -> None:
        batch.replayed = replayed
        self._in_flight[batch.sequence] = batch
        self._sent_up_to = max(self._sent_up_to, batch.sequence)
        await call.write(up.AgentMessage(batch=batch))
        self.stats.batches_sent += 1
        self.stats.observations_sent += len(batch.observations)

    async def _read(self, call: UplinkCall) -> None:
        while True:
            message = await call.read()
            if not isinstance(message, up.CollectorMessage):  # grpc.aio.EOF
                raise ConnectionResetError("collector closed the stream")
            body = message.WhichOneof("body")
            if body == "batch_ack":
                self._take_ack(message.batch_ack)
            elif body == "config_push":
                self._take_config(message.config_push)
            self._wake.set()

    def _take_ack(self, ack: up.BatchAck) -> None:
        batch = self._in_flight.pop(ack.sequence, None)
        if batch is None:
            return
        self._session_acked = True
        if ack.status == up.BatchAck.STATUS_REJECTED:
            self.stats.batches_rejected += 1
            kept = self._spool.set_aside(batch, ack.reason)
            self._acked.set()
            log.error("collector rejected batch %d: %s (kept in %s)", ack.sequence, ack.reason,
                      kept)  # fmt: skip
            return
        self._spool.ack(ack.sequence)
        self.stats.observations_acked += len(batch.observations)
        self._acked.set()

    def _take_config(self, push: up.ConfigPush) -> None:
        if self._on_config is None:
            status = up.ConfigStatus(
                version=push.version, accepted=False, reason="this agent takes no pushed checks"
            )
        else:
            status = self._on_config(push)
        self._control.append(up.AgentMessage(config_status=status))


async def _wait_either(event: asyncio.Event, task: asyncio.Task[None], timeout: float) -> None:
    """Until ``event`` is set, ``task`` ends, or ``timeout`` seconds pass."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
