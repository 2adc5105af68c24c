"""Connecting, reading lines and upgrading to TLS for the request/response probes.

Every failure is raised as ``ProbeFailure`` with an outcome and an error
class from the one taxonomy (docs/architecture.md), so that each probe kind
reports the same situation the same way: refused means a host answered and
nothing listens; timeout and unreachable mean the path or the host is gone.
``ProbeFailure`` never leaves a probe: ``run_round`` turns it into an
observation.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from agent.check_options import TlsOptions
from slawatch.v1 import observation_pb2 as pb

LINE_LIMIT = 8192

_ERRNO_FAILURE: dict[int, tuple[pb.Outcome, pb.ErrorClass]] = {
    errno.ECONNREFUSED: (pb.OUTCOME_REFUSED, pb.ERROR_CLASS_CONNECT_REFUSED),
    errno.EHOSTUNREACH: (pb.OUTCOME_UNREACHABLE, pb.ERROR_CLASS_HOST_UNREACHABLE),
    errno.ENETUNREACH: (pb.OUTCOME_UNREACHABLE, pb.ERROR_CLASS_NET_UNREACHABLE),
    errno.EACCES: (pb.OUTCOME_UNREACHABLE, pb.ERROR_CLASS_ADMIN_PROHIBITED),
    errno.EPERM: (pb.OUTCOME_UNREACHABLE, pb.ERROR_CLASS_ADMIN_PROHIBITED),
    errno.ETIMEDOUT: (pb.OUTCOME_TIMEOUT, pb.ERROR_CLASS_CONNECT_TIMEOUT),
}


class ProbeFailure(Exception):
    """Why a round failed; internal to probes, turned into an observation."""

    def __init__(self, outcome: pb.Outcome, error_class: pb.ErrorClass, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.error_class = error_class
        self.detail = detail


def failure_from_os_error(exc: OSError, during: str = "connect") -> ProbeFailure:
    outcome, error_class = _ERRNO_FAILURE.get(
        exc.errno or 0, (pb.OUTCOME_ERROR, pb.ERROR_CLASS_LOCAL_ERROR)
    )
    if during != "connect" and error_class == pb.ERROR_CLASS_CONNECT_REFUSED:
        # A reset after the connection was up: the service dropped us.
        outcome, error_class = pb.OUTCOME_FAILED, pb.ERROR_CLASS_PROTOCOL_ERROR
    return ProbeFailure(outcome, error_class, f"{during}: {exc.strerror or exc}")


def protocol_error(detail: str) -> ProbeFailure:
    return ProbeFailure(pb.OUTCOME_FAILED, pb.ERROR_CLASS_PROTOCOL_ERROR, detail)


def bad_status(detail: str) -> ProbeFailure:
    return ProbeFailure(pb.OUTCOME_FAILED, pb.ERROR_CLASS_BAD_STATUS, detail)


class Phase:
    """Which step a round is in, so a timeout can say what timed out."""

    __slots__ = ("name",)

    def __init__(self) -> None:
        self.name = "connect"

    def timeout_failure(self, timeout: float) -> ProbeFailure:
        if self.name == "connect":
            return ProbeFailure(
                pb.OUTCOME_TIMEOUT, pb.ERROR_CLASS_CONNECT_TIMEOUT, f"no answer in {timeout:g}s"
            )
        return ProbeFailure(
            pb.OUTCOME_TIMEOUT, pb.ERROR_CLASS_READ_TIMEOUT, f"{self.name} timed out"
        )


async def resolve(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProbeFailure(pb.OUTCOME_ERROR, pb.ERROR_CLASS_DNS_FAILURE, f"{host}: {exc}") from None
    family, _type, _proto, _name, address = infos[0]
    return family, str(address[0])


@dataclass(slots=True)
class Stream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    # TCP handshake time: the network's share of the round.
    connect_ns: int = 0
    tls: pb.TlsDetail | None = None
    # From the last send to the first bytes of the answer that followed it.
    last_read_ns: int = 0
    _sent_at: int = 0

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):  # leaving anyway
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)

    async def read_line(self, phase: Phase, what: str) -> str:
        phase.name = f"reading the {what}"
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            raise protocol_error(f"connection closed before the {what}") from None
        except asyncio.LimitOverrunError:
            raise protocol_error(f"{what}: line longer than {LINE_LIMIT} bytes") from None
        except OSError as exc:
            raise failure_from_os_error(exc, f"reading the {what}") from None
        return line.decode("utf-8", "replace").rstrip("\r\n")

    async def send_line(self, line: str) -> None:
        await self.send(line.encode("ascii") + b"\r\n")

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        try:
            await self.writer.drain()
        except OSError as exc:
            raise failure_from_os_error(exc, "sending") from None
        self._sent_at = time.monotonic_ns()

    async def read_some(self, phase: Phase, what: str) -> bytes:
        """Whatever has arrived (b"" at end of stream)."""
        phase.name = f"reading {what}"
        try:
            data = await self.reader.read(16384)
        except OSError as exc:
            raise failure_from_os_error(exc, f"reading {what}") from None
        if self._sent_at and not self.last_read_ns:
            self.last_read_ns = time.monotonic_ns() - self._sent_at
        return data


@lru_cache(maxsize=64)
def tls_context(options: TlsOptions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=options.ca_file)
    if not options.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _tls_failure(exc: ssl.SSLError) -> ProbeFailure:
    detail = getattr(exc, "verify_message", None) or exc.reason or str(exc)
    return ProbeFailure(pb.OUTCOME_FAILED, pb.ERROR_CLASS_TLS_ERROR, f"TLS: {detail}")


def tls_detail(ssl_object: ssl.SSLObject | None, handshake_ns: int, verified: bool) -> pb.TlsDetail:
    detail = pb.TlsDetail(handshake_ns=handshake_ns, verified=verified)
    if ssl_object is None:
        return detail
    detail.protocol = ssl_object.version() or ""
    cert = ssl_object.getpeercert()  # empty when verification is off
    if cert:
        detail.cert_not_after_unix = int(ssl.cert_time_to_seconds(str(cert["notAfter"])))
        subject: Any = cert.get("subject", ())
        for rdn in subject:
            for key, value in rdn:
                if key == "commonName":
                    detail.cert_subject = str(value)
    return detail


async def connect(
    host: str,
    port: int,
    phase: Phase,
    tls: TlsOptions | None = None,
) -> Stream:
    """Open a TCP connection; with ``tls``, make it TLS from the first byte."""
    _family, address = await resolve(host, port)
    context = tls_context(tls) if tls is not None else None
    server_name = (tls.server_name or host) if tls is not None else None
    phase.name = "connect"
    started = time.monotonic_ns()
    try:
        reader, writer = await asyncio.open_connection(address, port, limit=LINE_LIMIT)
    except OSError as exc:
        raise failure_from_os_error(exc) from None
    stream = Stream(reader, writer, connect_ns=time.monotonic_ns() - started)
    if context is not None and tls is not None:
        await start_tls(stream, context, server_name or host, tls.verify, phase)
    return stream


async def start_tls(
    stream: Stream, context: ssl.SSLContext, server_name: str, verified: bool, phase: Phase
) -> None:
    """Upgrade the stream to TLS and record what the handshake showed."""
    phase.name = "the TLS handshake"
    started = time.monotonic_ns()
    try:
        await stream.writer.start_tls(context, server_hostname=server_name)
    except ssl.SSLError as exc:
        raise _tls_failure(exc) from None
    except OSError as exc:
        raise failure_from_os_error(exc, "the TLS handshake") from None
    ssl_object = stream.writer.get_extra_info("ssl_object")
    stream.tls = tls_detail(ssl_object, time.monotonic_ns() - started, verified)
