"""ICMP echo building and parsing, against hand-made packets."""

from __future__ import annotations

import socket
import struct

import pytest

from agent.net.icmp_packet import (
    EchoError,
    EchoReply,
    EchoTemplate,
    Unreachable,
    icmp_offset,
    internet_checksum,
    parse_reply,
)

TOKEN = bytes(range(8))


def test_checksum_matches_rfc1071_example() -> None:
    # RFC 1071 section 3 example words: 0001 f203 f4f5 f6f7 -> sum ddf2, checksum 220d
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_checksum_pads_odd_length() -> None:
    assert internet_checksum(b"\x01") == internet_checksum(b"\x01\x00")


@pytest.mark.parametrize("sequence", [0, 1, 0x1234, 0xFFFE, 0xFFFF])
def test_v4_template_builds_valid_echo_requests(sequence: int) -> None:
    payload = TOKEN + bytes(48)
    packet = EchoTemplate(socket.AF_INET, 0xBEEF, payload).build(sequence)
    icmp_type, code, _csum, ident, seq = struct.unpack("!BBHHH", packet[:8])
    assert (icmp_type, code, ident, seq) == (8, 0, 0xBEEF, sequence)
    assert packet[8:] == payload
    # A correct checksum makes the whole packet sum to zero.
    assert internet_checksum(packet) == 0


def test_v6_template_leaves_checksum_to_the_kernel() -> None:
    packet = EchoTemplate(socket.AF_INET6, 7, TOKEN).build(9)
    assert struct.unpack("!BBHHH", packet[:8]) == (128, 0, 0, 7, 9)


def _ipv4_header(src: str, dst: str, proto: int = 1) -> bytes:
    return struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20, 0, 0, 64, proto, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )  # fmt: skip


def test_parse_v4_echo_reply_after_ip_header() -> None:
    reply = struct.pack("!BBHHH", 0, 0, 0, 0xBEEF, 42) + TOKEN
    packet = _ipv4_header("198.18.0.2", "198.18.0.1") + reply
    offset = icmp_offset(packet, has_ip_header=True)
    assert offset == 20
    assert parse_reply(packet, offset, v6=False) == EchoReply(0xBEEF, 42, TOKEN)


@pytest.mark.parametrize(
    ("code", "reason"),
    [(0, Unreachable.NET), (1, Unreachable.HOST), (13, Unreachable.PROHIBITED),
     (3, Unreachable.OTHER)],
)  # fmt: skip
def test_parse_v4_destination_unreachable_quoting_our_echo(code: int, reason: Unreachable) -> None:
    quoted = _ipv4_header("198.18.0.1", "198.18.9.9") + struct.pack("!BBHHH", 8, 0, 0, 0xBEEF, 7)
    error = struct.pack("!BBHI", 3, code, 0, 0) + quoted
    packet = _ipv4_header("198.18.0.254", "198.18.0.1") + error
    parsed = parse_reply(packet, 20, v6=False)
    assert parsed == EchoError(0xBEEF, 7, reason, "198.18.9.9")


def test_parse_v4_time_exceeded() -> None:
    quoted = _ipv4_header("198.18.0.1", "198.18.9.9") + struct.pack("!BBHHH", 8, 0, 0, 1, 2)
    packet = _ipv4_header("198.18.0.254", "198.18.0.1") + struct.pack("!BBHI", 11, 0, 0, 0) + quoted
    parsed = parse_reply(packet, 20, v6=False)
    assert isinstance(parsed, EchoError)
    assert parsed.reason is Unreachable.TTL_EXCEEDED


def test_parse_v6_unreachable_quoting_our_echo() -> None:
    dst = socket.inet_pton(socket.AF_INET6, "2001:db8::9")
    src = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    inner = struct.pack("!IHBB", 0x60000000, 8, 58, 64) + src + dst
    packet = struct.pack("!BBHI", 1, 3, 0, 0) + inner + struct.pack("!BBHHH", 128, 0, 0, 5, 6)
    assert parse_reply(packet, 0, v6=True) == EchoError(5, 6, Unreachable.HOST, "2001:db8::9")


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x00" * 7,
        struct.pack("!BBHHH", 8, 0, 0, 1, 1) + TOKEN,  # an echo request, not a reply
        struct.pack("!BBHI", 3, 1, 0, 0) + b"\x45" + b"\x00" * 10,  # truncated quote
    ],
)
def test_parse_ignores_foreign_or_truncated_packets(packet: bytes) -> None:
    assert parse_reply(packet, 0, v6=False) is None


def test_identifier_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="identifier"):
        EchoTemplate(socket.AF_INET, 0x10000, TOKEN)
