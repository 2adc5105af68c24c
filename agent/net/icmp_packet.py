"""Building and parsing ICMP echo packets (IPv4 and IPv6), without scapy.

Only what the steady-state pinger needs: echo requests with a fixed payload,
echo replies, and the destination-unreachable / time-exceeded errors that
quote one of our requests. Everything works on ``bytes`` and offsets so the
hot path never copies more than it must.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from enum import IntEnum

ICMP4_ECHO_REPLY = 0
ICMP4_DEST_UNREACH = 3
ICMP4_ECHO_REQUEST = 8
ICMP4_TIME_EXCEEDED = 11
ICMP6_DEST_UNREACH = 1
ICMP6_TIME_EXCEEDED = 3
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129

_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
TOKEN_SIZE = 8


class Unreachable(IntEnum):
    """Why the network said our echo cannot be delivered."""

    NET = 1
    HOST = 2
    PROHIBITED = 3
    TTL_EXCEEDED = 4
    OTHER = 5


@dataclass(frozen=True, slots=True)
class EchoReply:
    identifier: int
    sequence: int
    token: bytes


@dataclass(frozen=True, slots=True)
class EchoError:
    """An ICMP error quoting one of our echo requests."""

    identifier: int
    sequence: int
    reason: Unreachable
    quoted_destination: str


def internet_checksum(data: bytes) -> int:
    """RFC 1071 ones'-complement checksum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class EchoTemplate:
    """Echo requests for one identifier and payload, differing only in sequence.

    The checksum of everything but the sequence number is computed once; each
    packet then costs one addition and a fold (RFC 1624 incremental update).
    """

    __slots__ = ("_family", "_identifier", "_partial_sum", "_payload", "_type")

    def __init__(self, family: socket.AddressFamily, identifier: int, payload: bytes) -> None:
        if not 0 <= identifier <= 0xFFFF:
            raise ValueError(f"identifier {identifier} out of range")
        self._family = family
        self._type = ICMP4_ECHO_REQUEST if family == socket.AF_INET else ICMP6_ECHO_REQUEST
        self._identifier = identifier
        self._payload = payload
        zero = _HEADER.pack(self._type, 0, 0, identifier, 0) + payload
        self._partial_sum = (~internet_checksum(zero)) & 0xFFFF

    def build(self, sequence: int) -> bytes:
        # For IPv6 the kernel fills in the checksum (it covers a pseudo-header
        # we do not see); for IPv4 datagram sockets it recomputes it anyway.
        total = self._partial_sum + sequence
        total = (total & 0xFFFF) + (total >> 16)
        checksum = ~total & 0xFFFF if self._family == socket.AF_INET else 0
        return _HEADER.pack(self._type, 0, checksum, self._identifier, sequence) + self._payload


def icmp_offset(packet: bytes, has_ip_header: bool) -> int:
    """Where the ICMP header starts: raw IPv4 sockets deliver the IP header too."""
    return (packet[0] & 0x0F) * 4 if has_ip_header else 0


def parse_reply(packet: bytes, offset: int, v6: bool) -> EchoReply | EchoError | None:
    """Decode an echo reply or an error quoting an echo request; else None."""
    if len(packet) < offset + 8:
        return None
    icmp_type, code, _checksum, identifier, sequence = _HEADER.unpack_from(packet, offset)
    if icmp_type == (ICMP6_ECHO_REPLY if v6 else ICMP4_ECHO_REPLY):
        token = packet[offset + 8 : offset + 8 + TOKEN_SIZE]
        return EchoReply(identifier, sequence, token)
    if v6:
        return _parse_error_v6(packet, offset, icmp_type, code)
    return _parse_error_v4(packet, offset, icmp_type, code)


def _unreachable_v4(icmp_type: int, code: int) -> Unreachable | None:
    if icmp_type == ICMP4_TIME_EXCEEDED:
        return Unreachable.TTL_EXCEEDED
    if icmp_type != ICMP4_DEST_UNREACH:
        return None
    if code in (0, 6):
        return Unreachable.NET
    if code in (1, 7):
        return Unreachable.HOST
    if code in (9, 10, 13):
        return Unreachable.PROHIBITED
    return Unreachable.OTHER


def _unreachable_v6(icmp_type: int, code: int) -> Unreachable | None:
    if icmp_type == ICMP6_TIME_EXCEEDED:
        return Unreachable.TTL_EXCEEDED
    if icmp_type != ICMP6_DEST_UNREACH:
        return None
    return {0: Unreachable.NET, 1: Unreachable.PROHIBITED, 3: Unreachable.HOST}.get(
        code, Unreachable.OTHER
    )


def _parse_error_v4(packet: bytes, offset: int, icmp_type: int, code: int) -> EchoError | None:
    reason = _unreachable_v4(icmp_type, code)
    inner = offset + 8
    if reason is None or len(packet) < inner + 20:
        return None
    inner_ihl = (packet[inner] & 0x0F) * 4
    quoted = inner + inner_ihl
    if packet[inner + 9] != socket.IPPROTO_ICMP or len(packet) < quoted + 8:
        return None
    q_type, _c, _s, identifier, sequence = _HEADER.unpack_from(packet, quoted)
    if q_type != ICMP4_ECHO_REQUEST:
        return None
    destination = socket.inet_ntop(socket.AF_INET, packet[inner + 16 : inner + 20])
    return EchoError(identifier, sequence, reason, destination)


def _parse_error_v6(packet: bytes, offset: int, icmp_type: int, code: int) -> EchoError | None:
    reason = _unreachable_v6(icmp_type, code)
    inner = offset + 8
    quoted = inner + 40  # fixed IPv6 header; we never send extension headers
    if reason is None or len(packet) < quoted + 8 or packet[inner + 6] != socket.IPPROTO_ICMPV6:
        return None
    q_type, _c, _s, identifier, sequence = _HEADER.unpack_from(packet, quoted)
    if q_type != ICMP6_ECHO_REQUEST:
        return None
    destination = socket.inet_ntop(socket.AF_INET6, packet[inner + 24 : inner + 40])
    return EchoError(identifier, sequence, reason, destination)
