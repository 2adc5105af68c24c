"""TCP connect: time to complete the handshake; refused, timed out and unreachable told apart."""

from __future__ import annotations

import asyncio
import socket
import time

from agent.config import CheckConfig, parse_host_port
from agent.net.streams import ProbeFailure, failure_from_os_error, resolve
from agent.observation import Observation
from agent.probes.base import WIRE_KIND, RoundClock
from slawatch.v1 import observation_pb2 as pb


class ConnectAttempt:
    """The result of one connect: RTT on success, else outcome, class and detail."""

    __slots__ = ("detail", "error_class", "outcome", "rtt_ns")

    def __init__(
        self,
        outcome: pb.Outcome,
        error_class: pb.ErrorClass = pb.ERROR_CLASS_NONE,
        detail: str = "",
        rtt_ns: int = 0,
    ) -> None:
        self.outcome = outcome
        self.error_class = error_class
        self.detail = detail
        self.rtt_ns = rtt_ns


async def connect_once(host: str, port: int, timeout: float) -> ConnectAttempt:
    """One non-blocking connect to a literal address or a name."""
    try:
        family, address = await resolve(host, port)
    except ProbeFailure as unresolved:
        return ConnectAttempt(unresolved.outcome, unresolved.error_class, unresolved.detail)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    started = time.monotonic_ns()
    try:
        async with asyncio.timeout(timeout):
            await asyncio.get_running_loop().sock_connect(sock, (address, port))
        return ConnectAttempt(pb.OUTCOME_OK, rtt_ns=time.monotonic_ns() - started)
    except TimeoutError:
        return ConnectAttempt(
            pb.OUTCOME_TIMEOUT, pb.ERROR_CLASS_CONNECT_TIMEOUT, f"no answer in {timeout:g}s"
        )
    except OSError as exc:
        refused = failure_from_os_error(exc)
        return ConnectAttempt(refused.outcome, refused.error_class, refused.detail)
    finally:
        sock.close()


class TcpProbe:
    def __init__(self, check: CheckConfig) -> None:
        self.check = check
        self._host, self._port = parse_host_port(check.target)

    async def run_round(self) -> Observation:
        clock = RoundClock()
        check = self.check
        attempts: list[ConnectAttempt] = []
        for index in range(check.packets):
            if index:
                await asyncio.sleep(check.spacing)
            attempts.append(await connect_once(self._host, self._port, check.timeout))
        rtts = [a.rtt_ns for a in attempts if a.outcome == pb.OUTCOME_OK]
        # The round is OK if any connect succeeded; else the last failure says why.
        last = attempts[-1] if not rtts else ConnectAttempt(pb.OUTCOME_OK)
        return Observation(
            check_id=check.id,
            kind=WIRE_KIND[check.kind],
            target=check.target,
            start_unix_ns=clock.start_unix_ns,
            duration_ns=clock.elapsed_ns(),
            outcome=last.outcome,
            error_class=last.error_class,
            error_detail=last.detail,
            packets_sent=len(attempts),
            packets_received=len(rtts),
            rtt_samples_ns=rtts,
        )
