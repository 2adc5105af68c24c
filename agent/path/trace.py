"""TTL-limited probes with a constant flow identifier (Paris traceroute), IPv4.

Routers that balance load over parallel paths (ECMP) pick a path per flow,
from a hash of the addresses, the protocol and the first bytes of the
transport header (ports; for ICMP some hash type, code and checksum, Linux
the echo identifier). Classic traceroute changes the UDP port or the ICMP
sequence with every probe, so each probe may take another path and the
"path" it prints can be a mix of several. Here every probe of a trace keeps
all of those fields constant and carries its identity where no hash looks:

* UDP: fixed source and destination port and payload (so a fixed checksum);
  the probe id is the IP identification, which ICMP errors quote back.
* ICMP echo: fixed identifier; the probe id is the sequence number, and the
  first two payload bytes are chosen so the ICMP checksum stays the same.
* TCP SYN: fixed ports; the probe id is in the low 16 bits of the sequence
  number (quoted by ICMP errors, acknowledged plus one by SYN-ACK or RST).

Packets are crafted with scapy, imported only in ``build_probe``; answers are
parsed here with ``struct`` (cheap, and testable without scapy).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

from agent.errors import ProbeSetupError
from agent.path.hops import AnswerKind

DEFAULT_PORTS = {"icmp": 0, "udp": 33434, "tcp": 80}
PAYLOAD = b"slawatch-path"  # fixed, so every probe of a flow has one checksum
_ICMP_ECHO_REPLY, _ICMP_UNREACH, _ICMP_ECHO, _ICMP_TIME_EXCEEDED = 0, 3, 8, 11
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_RECV_BUFFER = 1 << 20


@dataclass(frozen=True, slots=True)
class Flow:
    """Everything that stays constant across the probes of one trace."""

    probe: str  # icmp | udp | tcp
    source: str
    target: str
    flow_id: int  # the ICMP identifier, or the UDP/TCP source port
    port: int  # UDP/TCP destination port (0 for ICMP)
    seq_base: int = 0x5A000000  # TCP: high 16 bits of the sequence number

    def describe(self) -> dict[str, object]:
        if self.probe == "icmp":
            return {"probe": "icmp", "source": self.source, "icmp_id": self.flow_id}
        return {
            "probe": self.probe,
            "source": self.source,
            "source_port": self.flow_id,
            "destination_port": self.port,
        }


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer matched to our flow: who sent it, what it says, which probe."""

    source: str
    kind: AnswerKind
    probe_id: int


def source_address(target: str) -> str:
    """The address the kernel would send from toward ``target`` (nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((target, 9))
        except OSError as exc:
            raise ProbeSetupError(f"no route to {target}: {exc.strerror}") from exc
        address: str = sock.getsockname()[0]
        return address


def _scapy_layers() -> tuple[type, type, type, type, type]:
    # scapy logs warnings about interfaces at import; they are noise here.
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.packet import Raw

    return IP, ICMP, UDP, TCP, Raw


def build_probe(flow: Flow, ttl: int, probe_id: int) -> bytes:
    """The probe with id ``probe_id`` (1..65535) sent with ``ttl``, as IPv4 bytes."""
    if not 1 <= probe_id <= 0xFFFF:
        raise ValueError(f"probe id {probe_id} out of range")
    IP, ICMP, UDP, TCP, Raw = _scapy_layers()
    ip = IP(src=flow.source, dst=flow.target, ttl=ttl, id=probe_id)
    if flow.probe == "icmp":
        # seq + compensation == 0xFFFF whatever seq is: the ones'-complement
        # sum, and so the checksum, is the same for every probe of the flow.
        compensation = struct.pack("!H", 0xFFFF - probe_id)
        layer = ICMP(type=_ICMP_ECHO, id=flow.flow_id, seq=probe_id) / Raw(compensation + PAYLOAD)
    elif flow.probe == "udp":
        layer = UDP(sport=flow.flow_id, dport=flow.port) / Raw(PAYLOAD)
    else:
        layer = TCP(sport=flow.flow_id, dport=flow.port, flags="S", seq=flow.seq_base | probe_id)
    return bytes(ip / layer)


def parse_reply(packet: bytes, flow: Flow) -> Reply | None:
    """Match an IPv4 packet read from a raw socket to a probe of ``flow``, or None."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    proto, source = packet[9], socket.inet_ntoa(packet[12:16])
    body = packet[ihl:]
    if proto == socket.IPPROTO_ICMP and len(body) >= 8:
        return _parse_icmp(body, source, flow)
    if proto == socket.IPPROTO_TCP and flow.probe == "tcp" and source == flow.target:
        return _parse_tcp_answer(body, source, flow)
    return None


def _parse_icmp(body: bytes, source: str, flow: Flow) -> Reply | None:
    icmp_type = body[0]
    if icmp_type == _ICMP_ECHO_REPLY:
        if flow.probe != "icmp" or source != flow.target:
            return None
        identifier, sequence = struct.unpack_from("!HH", body, 4)
        return (
            Reply(source, AnswerKind.DESTINATION, sequence) if identifier == flow.flow_id else None
        )
    if icmp_type not in (_ICMP_TIME_EXCEEDED, _ICMP_UNREACH):
        return None
    probe_id = _quoted_probe_id(body[8:], flow)
    if probe_id is None:
        return None
    if icmp_type == _ICMP_TIME_EXCEEDED:
        kind = AnswerKind.TIME_EXCEEDED
    else:
        # From the target itself (UDP's port unreachable): the probe arrived.
        kind = AnswerKind.DESTINATION if source == flow.target else AnswerKind.UNREACHABLE
    return Reply(source, kind, probe_id)


def _quoted_probe_id(quoted: bytes, flow: Flow) -> int | None:
    """The probe id of the packet an ICMP error quotes, if it is one of ours.

    RFC 792 guarantees the IP header and 8 bytes of what followed it: enough
    for ports, the ICMP identifier and sequence, and the TCP sequence number.
    """
    if len(quoted) < 20 or quoted[0] >> 4 != 4:
        return None
    ihl = (quoted[0] & 0x0F) * 4
    transport = quoted[ihl : ihl + 8]
    if len(transport) < 8:
        return None
    if quoted[12:16] != socket.inet_aton(flow.source) or quoted[16:20] != socket.inet_aton(
        flow.target
    ):
        return None
    proto, ip_id = quoted[9], struct.unpack_from("!H", quoted, 4)[0]
    if flow.probe == "icmp" and proto == socket.IPPROTO_ICMP:
        icmp_type, _code, _sum, identifier, sequence = struct.unpack("!BBHHH", transport)
        ours = icmp_type == _ICMP_ECHO and identifier == flow.flow_id
        return int(sequence) if ours else None
    sport, dport = struct.unpack_from("!HH", transport)
    if (sport, dport) != (flow.flow_id, flow.port):
        return None
    if flow.probe == "udp" and proto == socket.IPPROTO_UDP:
        return int(ip_id)
    if flow.probe == "tcp" and proto == socket.IPPROTO_TCP:
        return _tcp_probe_id(struct.unpack_from("!I", transport, 4)[0], flow)
    return None


def _parse_tcp_answer(segment: bytes, source: str, flow: Flow) -> Reply | None:
    """A SYN-ACK (something listens) or RST (nothing does) from the target: it arrived."""
    if len(segment) < 14:
        return None
    sport, dport, _seq, ack = struct.unpack_from("!HHII", segment)
    flags = segment[13]
    syn_ack, rst = (flags & 0x12) == 0x12, bool(flags & 0x04)
    if (sport, dport) != (flow.port, flow.flow_id) or not (syn_ack or rst):
        return None
    probe_id = _tcp_probe_id((ack - 1) & 0xFFFFFFFF, flow)
    return None if probe_id is None else Reply(source, AnswerKind.DESTINATION, probe_id)


def _tcp_probe_id(sequence: int, flow: Flow) -> int | None:
    if sequence & 0xFFFF0000 != flow.seq_base:
        return None
    return (sequence & 0xFFFF) or None


class TraceSockets:
    """One raw socket to send crafted IPv4 packets, raw sockets to read the answers.

    Answers are ICMP (time exceeded, unreachable, echo reply) and, for TCP
    probes, the target's SYN-ACK or RST; a raw TCP socket sees a copy of
    every TCP segment the host receives, so it is opened only for TCP.
    """

    def __init__(self, probe: str) -> None:
        self._send: socket.socket | None = None
        self._receivers: list[socket.socket] = []
        try:
            self._send = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            protocols = [socket.IPPROTO_ICMP] + ([socket.IPPROTO_TCP] if probe == "tcp" else [])
            for proto in protocols:
                sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
                self._receivers.append(sock)
                sock.setblocking(False)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECV_BUFFER)
                # The kernel's receive time: a busy loop does not inflate the RTT.
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except PermissionError as exc:
            self.close()
            raise ProbeSetupError(
                "path discovery needs raw sockets: run as root or with CAP_NET_RAW"
            ) from exc

    def send(self, packet: bytes, target: str) -> int:
        """Send one crafted packet; return the wall-clock send time in ns."""
        assert self._send is not None
        # Taken before the send: an answer stamped by the kernel can never come
        # out earlier than its probe, however fast the lab is.
        sent_ns = time.time_ns()
        self._send.sendto(packet, (target, 0))
        return sent_ns

    def receive(self, timeout: float) -> Iterator[tuple[bytes, int]]:
        """Every packet that arrives within ``timeout`` s of the first wait, with its
        receive time (ns, wall clock); returns after one wake-up."""
        readable, _w, _x = select.select(self._receivers, [], [], max(0.0, timeout))
        for sock in readable:
            while True:
                try:
                    data, ancillary, _flags, _address = sock.recvmsg(65535, 64)
                except BlockingIOError:
                    break
                yield data, _timestamp(ancillary)

    def close(self) -> None:
        for sock in [*self._receivers, *([self._send] if self._send else [])]:
            with contextlib.suppress(OSError):
                sock.close()
        self._receivers.clear()
        self._send = None


def _timestamp(ancillary: list[tuple[int, int, bytes]]) -> int:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return int(seconds * 1_000_000_000 + nanoseconds)
    return time.time_ns()
