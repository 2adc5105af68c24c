"""One shared ICMP socket per address family, for every ICMP check of the agent.

Why it looks like this (CPU per probe is the figure that matters here):

* One socket per family, one reader callback that drains every queued reply,
  so a burst of replies costs one wake-up, not one per packet.
* Sends are not scheduled per packet: each active round has one entry in a
  heap, and one timer sends every packet due within ``tick`` of now. Rounds
  that run in step share wake-ups; a round's packets stay ``spacing`` apart.
* Replies are matched by sequence number, checked against the identifier and
  a per-engine random token in the payload (raw sockets see everybody's ICMP)
  and against the address we sent to.
* RTT uses the kernel's receive timestamp (SO_TIMESTAMPNS), so a busy event
  loop does not inflate it; a monotonic reading guards against clock steps.

Without CAP_NET_RAW the engine falls back to unprivileged ICMP datagram
sockets (``net.ipv4.ping_group_range``). Those do not deliver ICMP errors, so
in that mode an unreachable target shows as a timeout.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import heapq
import itertools
import logging
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import IcmpPermissionError, ProbeSetupError
from agent.net.icmp_packet import (
    ICMP4_DEST_UNREACH,
    ICMP4_ECHO_REPLY,
    ICMP4_TIME_EXCEEDED,
    ICMP6_DEST_UNREACH,
    ICMP6_ECHO_REPLY,
    ICMP6_TIME_EXCEEDED,
    TOKEN_SIZE,
    EchoError,
    EchoTemplate,
    Unreachable,
    icmp_offset,
    parse_reply,
)

log = logging.getLogger(__name__)

_SO_TIMESTAMPNS = 35  # Linux asm-generic; not exported by the socket module
_SO_RCVBUFFORCE = 33
_SO_ATTACH_FILTER = 26
_ICMP6_FILTER = 1
_ANCILLARY_SIZE = socket.CMSG_SPACE(16)
_TIMESPEC = struct.Struct("@qq")
_ECHO = struct.Struct("!BBHHH")
_PAYLOAD_PAD = 48
_SEND_ERRNO = {
    errno.ENETUNREACH: Unreachable.NET,
    errno.EHOSTUNREACH: Unreachable.HOST,
    errno.EPERM: Unreachable.PROHIBITED,
    errno.EACCES: Unreachable.PROHIBITED,
}


@dataclass(slots=True)
class PingResult:
    """What one round of echoes to one destination produced."""

    destination: str
    sent: int = 0
    rtts_ns: list[int] = field(default_factory=list)
    unreachable: dict[Unreachable, int] = field(default_factory=dict)
    # Probes we could not hand to the kernel at all (a local problem, not loss).
    local_errors: list[str] = field(default_factory=list)

    @property
    def received(self) -> int:
        return len(self.rtts_ns)


class _Round:
    __slots__ = (
        "done",
        "end_handle",
        "family_socket",
        "outstanding",
        "result",
        "spacing",
        "timeout",
        "timeout_ns",
        "to_send",
    )

    def __init__(
        self,
        family_socket: _FamilySocket,
        result: PingResult,
        count: int,
        spacing: float,
        timeout: float,
        done: asyncio.Future[None],
    ) -> None:
        self.family_socket = family_socket
        self.result = result
        self.to_send = count
        self.spacing = spacing
        self.timeout = timeout
        self.timeout_ns = int(timeout * 1e9)
        self.outstanding: set[int] = set()
        self.done = done
        self.end_handle: asyncio.TimerHandle | None = None

    def finish(self) -> None:
        for sequence in self.outstanding:
            self.family_socket.pending.pop(sequence, None)
        self.outstanding.clear()
        self.to_send = 0
        if self.end_handle is not None:
            self.end_handle.cancel()
        if not self.done.done():
            self.done.set_result(None)


class _FamilySocket:
    """The socket of one address family and the echoes in flight on it."""

    def __init__(self, family: socket.AddressFamily, token: bytes) -> None:
        self.family = family
        self.v6 = family == socket.AF_INET6
        self.sock, self.mode = _open_icmp_socket(family)
        self.has_ip_header = self.mode == "raw" and not self.v6
        if self.mode == "raw":
            self.identifier = int.from_bytes(os.urandom(2), "big")
            if not self.v6:
                _attach_reply_filter(self.sock, self.identifier)
        else:
            # The kernel sets the identifier of datagram ICMP to the local port.
            self.sock.bind(("::" if self.v6 else "0.0.0.0", 0))
            self.identifier = self.sock.getsockname()[1]
        self.token = token
        self.template = EchoTemplate(family, self.identifier, token + bytes(_PAYLOAD_PAD))
        self.reply_type = ICMP6_ECHO_REPLY if self.v6 else ICMP4_ECHO_REPLY
        # sequence -> (round, destination, send wall ns, send monotonic ns)
        self.pending: dict[int, tuple[_Round, str, int, int]] = {}
        self._next_sequence = int.from_bytes(os.urandom(2), "big")

    def allocate_sequence(self) -> int | None:
        for _ in range(0x10000):
            sequence = self._next_sequence
            self._next_sequence = (sequence + 1) & 0xFFFF
            if sequence not in self.pending:
                return sequence
        return None


def _ping_group_range() -> str:
    try:
        return " ".join(Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    except OSError:
        return "unknown"


def _open_icmp_socket(family: socket.AddressFamily) -> tuple[socket.socket, str]:
    proto = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
    try:
        sock = socket.socket(family, socket.SOCK_RAW, proto)
        mode = "raw"
    except PermissionError:
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM, proto)
            mode = "datagram"
        except PermissionError:
            raise IcmpPermissionError(
                f"ICMP needs a raw socket (CAP_NET_RAW) or an unprivileged ICMP socket, and "
                f"this process (uid {os.getuid()}, gid {os.getgid()}) may open neither: "
                f"net.ipv4.ping_group_range is '{_ping_group_range()}'. Run the agent with "
                f"CAP_NET_RAW (systemd AmbientCapabilities=CAP_NET_RAW) or widen the range: "
                f"sysctl -w net.ipv4.ping_group_range='0 2147483647'"
            ) from None
    except OSError as exc:
        raise ProbeSetupError(f"cannot open an ICMP socket for {family.name}: {exc}") from None
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    _enlarge_receive_buffer(sock, 4 << 20)
    if mode == "raw" and family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, _icmp6_filter())
    return sock, mode


def _enlarge_receive_buffer(sock: socket.socket, size: int) -> None:
    # Bursts of replies from a thousand targets must not overflow the queue.
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def _bpf_program(identifier: int) -> list[tuple[int, int, int, int]]:
    """Classic BPF for a raw IPv4 ICMP socket: keep our echo replies and ICMP errors.

    A raw socket otherwise receives every ICMP packet on the host: other
    pingers' replies, and on loopback each of our own requests too.
    """
    ldx_ip_header_length = 0xB1  # BPF_LDX|BPF_B|BPF_MSH: X = 4 * (byte[0] & 0xf)
    ld_byte_at_x, ld_half_at_x = 0x50, 0x48  # BPF_LD|BPF_B|BPF_IND, BPF_LD|BPF_H|BPF_IND
    jeq, ret = 0x15, 0x06  # BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
    return [
        (ldx_ip_header_length, 0, 0, 0),
        (ld_byte_at_x, 0, 0, 0),  # A = ICMP type
        (jeq, 2, 0, ICMP4_ECHO_REPLY),  # -> check the identifier
        (jeq, 3, 0, ICMP4_DEST_UNREACH),  # -> keep
        (jeq, 2, 3, ICMP4_TIME_EXCEEDED),  # -> keep / drop
        (ld_half_at_x, 0, 0, 4),  # A = identifier
        (jeq, 0, 1, identifier),
        (ret, 0, 0, 0x40000),  # keep the whole packet
        (ret, 0, 0, 0),  # drop
    ]


def _attach_reply_filter(sock: socket.socket, identifier: int) -> None:
    program = _bpf_program(identifier)
    code = ctypes.create_string_buffer(b"".join(struct.pack("@HBBI", *i) for i in program))
    fprog = struct.pack("@HP", len(program), ctypes.addressof(code))
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError as exc:  # still correct without it, only busier
        log.warning("could not attach the ICMP reply filter: %s", exc)


def _icmp6_filter() -> bytes:
    """Let through only echo replies and the errors that quote our requests."""
    words = [0xFFFFFFFF] * 8  # a set bit blocks that type
    for icmp_type in (ICMP6_DEST_UNREACH, ICMP6_TIME_EXCEEDED, ICMP6_ECHO_REPLY):
        words[icmp_type >> 5] &= ~(1 << (icmp_type & 31))
    return struct.pack("@8I", *words)


class IcmpEngine:
    """Sends echo rounds and matches replies for every ICMP check of the agent."""

    def __init__(self, tick: float = 0.002) -> None:
        self._tick = tick
        self._token = os.urandom(TOKEN_SIZE)
        self._sockets: dict[socket.AddressFamily, _FamilySocket] = {}
        self._due: list[tuple[float, int, _Round, str]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self.packets_sent = 0
        self.replies_received = 0
        # Packets the kernel handed us at all (after the BPF filter).
        self.packets_seen = 0

    def open(self, family: socket.AddressFamily) -> str:
        """Open the family's socket now (so permission errors show at start); return its mode."""
        if family not in self._sockets:
            family_socket = _FamilySocket(family, self._token)
            self._sockets[family] = family_socket
            asyncio.get_running_loop().add_reader(
                family_socket.sock.fileno(), self._drain, family_socket
            )
            log.debug("ICMP %s socket open in %s mode", family.name, family_socket.mode)
        return self._sockets[family].mode

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for family_socket in self._sockets.values():
            loop.remove_reader(family_socket.sock.fileno())
            family_socket.sock.close()
        self._sockets.clear()
        if self._timer is not None:
            self._timer.cancel()

    async def ping(
        self, destination: str, count: int, spacing: float, timeout: float
    ) -> PingResult:
        """Send ``count`` echoes ``spacing`` seconds apart; wait ``timeout`` for each."""
        family = socket.AF_INET6 if ":" in destination else socket.AF_INET
        self.open(family)
        loop = asyncio.get_running_loop()
        result = PingResult(destination)
        ping_round = _Round(
            self._sockets[family], result, count, spacing, timeout, loop.create_future()
        )
        heapq.heappush(self._due, (loop.time(), next(self._order), ping_round, destination))
        self._arm_timer()  # rounds started in the same loop iteration share the wake-up
        try:
            await ping_round.done
        finally:
            ping_round.finish()
        return result

    # -- sending ----------------------------------------------------------

    def _arm_timer(self) -> None:
        if not self._due:
            return
        due = self._due[0][0]
        if self._timer is not None and not self._timer.cancelled() and self._timer_due <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = asyncio.get_running_loop().call_at(due, self._send_due)

    def _send_due(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        horizon = loop.time() + self._tick
        due = self._due
        while due and due[0][0] <= horizon:
            when, _, ping_round, destination = heapq.heappop(due)
            if ping_round.to_send <= 0:
                continue  # finished or cancelled meanwhile
            self._send_one(ping_round, destination)
            ping_round.to_send -= 1
            if ping_round.to_send > 0:
                item = (when + ping_round.spacing, next(self._order), ping_round, destination)
                heapq.heappush(due, item)
            elif not ping_round.outstanding:
                ping_round.finish()  # nothing left in flight (all answered, or send errors)
            else:
                # The last echo gets its full timeout from when it actually left,
                # even if sending ran late on a busy loop.
                ping_round.end_handle = loop.call_later(ping_round.timeout, ping_round.finish)
        self._arm_timer()

    def _send_one(self, ping_round: _Round, destination: str) -> None:
        family_socket = ping_round.family_socket
        result = ping_round.result
        sequence = family_socket.allocate_sequence()
        if sequence is None:
            result.local_errors.append("more than 65536 echoes in flight")
            return
        packet = family_socket.template.build(sequence)
        sent_wall = time.time_ns()
        try:
            family_socket.sock.sendto(packet, (destination, 0))
        except BlockingIOError:
            result.local_errors.append("socket send buffer full")
            return
        except OSError as exc:
            reason = _SEND_ERRNO.get(exc.errno or 0)
            if reason is None:  # our problem, not the network's: not counted as sent
                result.local_errors.append(f"sendto: {exc.strerror}")
            else:  # the local routing table already says unreachable: sent, and lost
                result.sent += 1
                self.packets_sent += 1
                result.unreachable[reason] = result.unreachable.get(reason, 0) + 1
            return
        result.sent += 1
        self.packets_sent += 1
        family_socket.pending[sequence] = (ping_round, destination, sent_wall, time.monotonic_ns())
        ping_round.outstanding.add(sequence)

    # -- receiving --------------------------------------------------------

    def _drain(self, family_socket: _FamilySocket) -> None:
        sock = family_socket.sock
        while True:
            try:
                packet, ancillary, _flags, address = sock.recvmsg(2048, _ANCILLARY_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # a queued socket error, e.g. from a datagram socket
                log.debug("ICMP socket error: %s", exc)
                continue
            self.packets_seen += 1
            self._handle_packet(family_socket, packet, ancillary, address[0])

    def _handle_packet(
        self,
        family_socket: _FamilySocket,
        packet: bytes,
        ancillary: list[tuple[int, int, bytes]],
        source: str,
    ) -> None:
        offset = icmp_offset(packet, family_socket.has_ip_header)
        if len(packet) < offset + 8 + TOKEN_SIZE:
            return self._handle_error(family_socket, packet, offset)
        icmp_type, _code, _sum, identifier, sequence = _ECHO.unpack_from(packet, offset)
        if icmp_type != family_socket.reply_type:
            return self._handle_error(family_socket, packet, offset)
        entry = family_socket.pending.get(sequence)
        if (
            entry is None
            or packet[offset + 8 : offset + 8 + TOKEN_SIZE] != family_socket.token
            or (family_socket.mode == "raw" and identifier != family_socket.identifier)
            or entry[1] != source
        ):
            return None
        ping_round, _dest, sent_wall, sent_mono = entry
        del family_socket.pending[sequence]
        ping_round.outstanding.discard(sequence)
        elapsed_mono = time.monotonic_ns() - sent_mono
        rtt = elapsed_mono
        if ancillary:
            seconds, nanoseconds = _TIMESPEC.unpack_from(ancillary[0][2])
            kernel_rtt = seconds * 1_000_000_000 + nanoseconds - sent_wall
            if 0 <= kernel_rtt <= elapsed_mono:
                rtt = kernel_rtt
        if rtt <= ping_round.timeout_ns:  # a late reply counts as lost
            ping_round.result.rtts_ns.append(rtt)
            self.replies_received += 1
        if not ping_round.outstanding and ping_round.to_send <= 0:
            ping_round.finish()
        return None

    def _handle_error(self, family_socket: _FamilySocket, packet: bytes, offset: int) -> None:
        parsed = parse_reply(packet, offset, family_socket.v6)
        if not isinstance(parsed, EchoError):
            return
        entry = family_socket.pending.get(parsed.sequence)
        if entry is None or entry[1] != parsed.quoted_destination:
            return
        if family_socket.mode == "raw" and parsed.identifier != family_socket.identifier:
            return
        ping_round = entry[0]
        del family_socket.pending[parsed.sequence]
        ping_round.outstanding.discard(parsed.sequence)
        counts = ping_round.result.unreachable
        counts[parsed.reason] = counts.get(parsed.reason, 0) + 1
        if not ping_round.outstanding and ping_round.to_send <= 0:
            ping_round.finish()
