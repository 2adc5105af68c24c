"""The Uplink gRPC service: authenticate-later, validate, store, then ack.

Per stream: the first message must be a hello; then batches, heartbeats and
config statuses (the agent's answer to a config push) in any order. A batch
is acked only after the store has committed it. A batch that breaks the
contract is answered REJECTED with the reason and nothing of it is stored; a
stream that breaks the protocol itself (no hello, a second hello, an empty
message, an invalid heartbeat or config status) is aborted with
INVALID_ARGUMENT or FAILED_PRECONDITION.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
from cryptography import x509

from collector import __version__
from collector.errors import InvalidMessage, StoreError
from collector.exporters.metrics import BATCH_DUPLICATE, BATCH_REJECTED, CollectorMetrics
from collector.ingest.config_push import ConfigDistributor
from collector.ingest.revocation import CertificateWatch, RevocationList, peer_certificate
from collector.ingest.validate import (
    Limits,
    validate_batch,
    validate_config_status,
    validate_envelope,
    validate_heartbeat,
    validate_hello,
)
from collector.pki import common_name, serial_hex
from collector.store.sqlite import BatchResult, Store
from slawatch.v1 import uplink_pb2 as up
from slawatch.v1 import uplink_pb2_grpc as up_grpc

log = logging.getLogger(__name__)

# A stream must say hello this soon, or it is closed (it holds a handler).
HELLO_TIMEOUT = 10.0
# An agent reconnecting may briefly have its old stream open beside the new one.
MAX_STREAMS_PER_AGENT = 3

Context = grpc.aio.ServicerContext[up.AgentMessage, up.CollectorMessage]
# A message the agent sends besides batches, which gets no answer.
R = TypeVar("R", up.Heartbeat, up.ConfigStatus)


def certificate_identity(context: Context) -> str | None:
    """The common name of the peer's verified client certificate, if any."""
    names = list(context.auth_context().get("x509_common_name", []))
    return names[0].decode("utf-8", "replace") if names else None


class UplinkService(up_grpc.UplinkServicer):
    def __init__(
        self,
        store: Store,
        metrics: CollectorMetrics,
        limits: Limits,
        require_identity: bool = True,
        max_streams: int = 10_000,
        distributor: ConfigDistributor | None = None,
        revocations: RevocationList | None = None,
    ) -> None:
        self._distributor = distributor
        # With mTLS: the CRL, checked here because gRPC's Python API has no CRL option.
        self._revocations = revocations
        self._store = store
        self._metrics = metrics
        self._limits = limits
        self._max_streams = max_streams
        self._open_streams: collections.Counter[str] = collections.Counter()
        # With mTLS, an agent may speak only in its certificate's name.
        self._require_identity = require_identity

    async def _abort(self, context: Context, code: grpc.StatusCode, error: InvalidMessage) -> None:
        self._metrics.rejections.labels(error.rule).inc()
        log.warning("%s: aborting stream: %s", context.peer(), error)
        await context.abort(code, str(error))

    async def Stream(
        self,
        request_iterator: AsyncIterator[up.AgentMessage],
        context: Context,
    ) -> AsyncIterator[up.CollectorMessage]:
        # The verified client certificate (None without mTLS), parsed once per stream.
        certificate = peer_certificate(context.auth_context())
        watch = await self._check_revocation(context, certificate)
        try:
            async for reply in self._stream(request_iterator, context, watch, certificate):
                yield reply
        finally:
            if watch is not None and self._revocations is not None:
                self._revocations.forget(watch)

    async def _check_revocation(
        self, context: Context, certificate: x509.Certificate | None
    ) -> CertificateWatch | None:
        """Refuse a revoked certificate before anything else; follow any other one, so
        that the stream ends when the CRL comes to list it. (gRPC's Python API has no CRL
        option: the TLS handshake checks the chain to the CA only.)"""
        if self._revocations is None:
            return None
        if certificate is None:  # without one, the identity check refuses the stream
            return None
        self._revocations.refresh()
        watch = self._revocations.watch(certificate, common_name(certificate))
        if watch.ended.is_set():
            self._revocations.forget(watch)
            await self._refuse_revoked(context, watch)
        return watch

    async def _refuse_revoked(self, context: Context, watch: CertificateWatch) -> None:
        revocation = watch.revocation
        assert revocation is not None
        self._metrics.rejections.labels("revoked").inc()
        serial = serial_hex(watch.serial)
        log.warning("%s: certificate serial %s of agent %r is revoked: stream refused",
                    context.peer(), serial, watch.agent_id)  # fmt: skip
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"certificate serial {serial} of agent {watch.agent_id!r} was revoked "
            f"({revocation.revoked_at:%Y-%m-%d %H:%M:%S}Z, {revocation.reason}); "
            "the agent needs a new certificate",
        )

    async def _stream(
        self,
        request_iterator: AsyncIterator[up.AgentMessage],
        context: Context,
        watch: CertificateWatch | None,
        certificate: x509.Certificate | None,
    ) -> AsyncIterator[up.CollectorMessage]:
        try:
            first = await asyncio.wait_for(anext(aiter(request_iterator), None), HELLO_TIMEOUT)
        except TimeoutError:
            error = InvalidMessage("protocol", f"no hello within {HELLO_TIMEOUT:g}s")
            await self._abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, error)
        if first is None:
            return
        hello = await self._accept_hello(first, context)
        agent_id = hello.agent_id
        if self._require_identity:
            await self._check_identity(agent_id, context)
        if watch is not None and watch.ended.is_set():  # revoked while it said hello
            await self._refuse_revoked(context, watch)
        await self._admit(agent_id, context)
        try:
            async for reply in self._serve_stream(
                hello, request_iterator, context, watch, certificate
            ):
                yield reply
        except asyncio.CancelledError:
            # The agent went away mid-stream; nothing is half-stored (writes are
            # transactions), and unacked batches will be resent.
            log.debug("agent %s: stream cancelled", agent_id)
        finally:
            self._open_streams[agent_id] -= 1
            if self._open_streams[agent_id] <= 0:
                del self._open_streams[agent_id]

    async def _admit(self, agent_id: str, context: Context) -> None:
        """Bounded streams: a reconnect storm or a flood cannot crowd out other agents."""
        if self._open_streams.total() >= self._max_streams:
            self._metrics.rejections.labels("too_many_streams").inc()
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the collector has its limit of {self._max_streams} streams open",
            )
        if self._open_streams[agent_id] >= MAX_STREAMS_PER_AGENT:
            self._metrics.rejections.labels("too_many_streams").inc()
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"agent {agent_id!r} has {MAX_STREAMS_PER_AGENT} streams open already",
            )
        self._open_streams[agent_id] += 1

    async def _serve_stream(
        self,
        hello: up.Hello,
        request_iterator: AsyncIterator[up.AgentMessage],
        context: Context,
        watch: CertificateWatch | None,
        certificate: x509.Certificate | None,
    ) -> AsyncIterator[up.CollectorMessage]:
        agent_id, epoch = hello.agent_id, hello.sequence_epoch
        try:
            last_stored = await self._store.record_agent(hello, time.time_ns())
        except StoreError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"store unavailable: {exc}")
        log.info("agent %s connected from %s (epoch %d)", agent_id, context.peer(), epoch)
        # Its identity was checked: the expiry is of this agent's own certificate.
        not_after = certificate.not_valid_after_utc.timestamp() if certificate else None
        self._metrics.agent_connected(agent_id, not_after)
        try:
            yield up.CollectorMessage(
                hello_ack=up.HelloAck(
                    collector_version=__version__, last_stored_sequence=last_stored
                )
            )
            async for reply in self._replies(hello, request_iterator, context, watch):
                yield reply
        finally:
            self._metrics.agent_disconnected(agent_id)
            log.info("agent %s disconnected", agent_id)

    async def _replies(
        self,
        hello: up.Hello,
        request_iterator: AsyncIterator[up.AgentMessage],
        context: Context,
        watch: CertificateWatch | None,
    ) -> AsyncIterator[up.CollectorMessage]:
        """Acks for the agent's messages, merged with configuration pushes; ended when
        the stream's certificate is revoked."""
        outgoing: asyncio.Queue[up.CollectorMessage | None] = asyncio.Queue()
        tasks = [asyncio.create_task(self._answer(hello, request_iterator, context, outgoing))]
        if self._distributor is not None:
            tasks.append(asyncio.create_task(self._push(hello, outgoing)))
        if watch is not None:
            tasks.append(asyncio.create_task(_end_on(watch.ended, outgoing)))
        try:
            while (reply := await outgoing.get()) is not None:
                yield reply
            if watch is not None and watch.ended.is_set():
                await self._refuse_revoked(context, watch)
            tasks[0].result()  # re-raise an abort of the reader here, in the handler
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _answer(
        self,
        hello: up.Hello,
        request_iterator: AsyncIterator[up.AgentMessage],
        context: Context,
        outgoing: asyncio.Queue[up.CollectorMessage | None],
    ) -> None:
        try:
            async for message in request_iterator:
                received = time.perf_counter()
                ack = await self._handle(hello.agent_id, hello.sequence_epoch, message, context)
                if ack is not None:
                    outgoing.put_nowait(up.CollectorMessage(batch_ack=ack))
                    # Queued is as far as the handler sees: the reply loop sends it next.
                    self._metrics.ack_latency.observe(time.perf_counter() - received)
        finally:
            outgoing.put_nowait(None)

    async def _push(
        self, hello: up.Hello, outgoing: asyncio.Queue[up.CollectorMessage | None]
    ) -> None:
        """The agent's check list now (unless it runs it already), then every change."""
        assert self._distributor is not None
        changes = self._distributor.subscribe(hello.agent_id)
        running = hello.config_version
        try:
            push = self._distributor.push_for(hello.agent_id)
            while True:
                if push.version != running:
                    log.info("agent %s: pushing checks version %s", hello.agent_id, push.version)
                    outgoing.put_nowait(up.CollectorMessage(config_push=push))
                running = push.version
                push = await changes.get()
        finally:
            self._distributor.unsubscribe(hello.agent_id, changes)

    async def _check_identity(self, agent_id: str, context: Context) -> None:
        identity = certificate_identity(context)
        if identity == agent_id:
            return
        self._metrics.rejections.labels("bad_identity").inc()
        log.warning("%s: certificate of %r, hello claims %r: refused", context.peer(),
                    identity, agent_id)  # fmt: skip
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"this certificate is for {identity!r}, not for agent {agent_id!r}",
        )

    async def _accept_hello(self, first: up.AgentMessage, context: Context) -> up.Hello:
        try:
            validate_envelope(first)
            if first.WhichOneof("body") != "hello":
                raise InvalidMessage("protocol", "the first message of a stream must be a hello")
            validate_hello(first.hello)
        except InvalidMessage as exc:
            code = (
                grpc.StatusCode.FAILED_PRECONDITION
                if exc.rule == "protocol"
                else grpc.StatusCode.INVALID_ARGUMENT
            )
            await self._abort(context, code, exc)
        return first.hello

    async def _handle(
        self,
        agent_id: str,
        epoch: int,
        message: up.AgentMessage,
        context: Context,
    ) -> up.BatchAck | None:
        try:
            validate_envelope(message)
        except InvalidMessage as exc:
            await self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc)
        body = message.WhichOneof("body")
        if body == "batch":
            return await self._handle_batch(agent_id, epoch, message.batch, context)
        if body == "heartbeat":
            await self._handle_report(agent_id, message.heartbeat, validate_heartbeat,
                                      self._store.write_heartbeat, self._metrics.heartbeat,
                                      context)  # fmt: skip
            return None
        if body == "config_status":
            await self._handle_report(agent_id, message.config_status, validate_config_status,
                                      self._store.write_config_status, self._config_status,
                                      context)  # fmt: skip
            return None
        error = InvalidMessage("protocol", f"unexpected {body} after the hello")
        await self._abort(context, grpc.StatusCode.FAILED_PRECONDITION, error)
        return None

    async def _handle_batch(
        self,
        agent_id: str,
        epoch: int,
        batch: up.ObservationBatch,
        context: Context,
    ) -> up.BatchAck:
        now = time.time_ns()
        try:
            validate_batch(batch, now, self._limits)
        except InvalidMessage as exc:
            self._metrics.batches.labels(BATCH_REJECTED).inc()
            self._metrics.rejections.labels(exc.rule).inc()
            log.warning("agent %s batch %d rejected: %s", agent_id, batch.sequence, exc.reason)
            return up.BatchAck(
                sequence=batch.sequence, status=up.BatchAck.STATUS_REJECTED, reason=str(exc)
            )
        try:
            result, losses = await self._store.write_batch(agent_id, epoch, batch, now)
        except StoreError as exc:
            log.error("agent %s batch %d not stored: %s", agent_id, batch.sequence, exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "store failed; resend later")
        if result is BatchResult.DUPLICATE:
            self._metrics.batches.labels(BATCH_DUPLICATE).inc()
            return up.BatchAck(sequence=batch.sequence, status=up.BatchAck.STATUS_DUPLICATE)
        self._metrics.stored(agent_id, list(batch.observations))
        self._metrics.spool_drops(agent_id, losses)
        return up.BatchAck(sequence=batch.sequence, status=up.BatchAck.STATUS_ACCEPTED)

    async def _handle_report(
        self,
        agent_id: str,
        report: R,
        validate: Callable[[R], None],
        write: Callable[[str, R, int], Awaitable[None]],
        export: Callable[[str, R], None],
        context: Context,
    ) -> None:
        """Heartbeats and config statuses: never acked. An invalid one aborts the stream;
        one the store fails on is logged and lost, as the agent sends another."""
        try:
            validate(report)
        except InvalidMessage as exc:
            await self._abort(context, grpc.StatusCode.INVALID_ARGUMENT, exc)
        try:
            await write(agent_id, report, time.time_ns())
        except StoreError as exc:
            log.error("agent %s %s not stored: %s", agent_id, type(report).__name__, exc)
            return
        export(agent_id, report)

    def _config_status(self, agent_id: str, status: up.ConfigStatus) -> None:
        if not status.accepted:
            log.warning("agent %s rejected config %r: %s", agent_id, status.version,
                        status.reason[:512])  # fmt: skip
        self._metrics.config_status(agent_id, status)


async def _end_on(
    event: asyncio.Event, outgoing: asyncio.Queue[up.CollectorMessage | None]
) -> None:
    """Wake the stream's handler (an end of the queue) when ``event`` is set."""
    await event.wait()
    outgoing.put_nowait(None)
