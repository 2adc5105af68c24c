"""Paris-traceroute probes: the flow stays constant, answers are matched by the
headers ICMP errors quote. Packets are built with scapy, as the routers'
answers would be."""

from __future__ import annotations

import subprocess
import sys

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror, UDPerror
from scapy.packet import Raw

from agent.path.hops import Answer, AnswerKind, PathTracker, RoundResult
from agent.path.session import next_limit
from agent.path.trace import Flow, Reply, build_probe, parse_reply

SOURCE, TARGET, ROUTER = "198.18.0.2", "198.18.4.2", "198.18.1.2"
FLOWS = {
    "icmp": Flow("icmp", SOURCE, TARGET, 4242, 0),
    "udp": Flow("udp", SOURCE, TARGET, 41000, 33434),
    "tcp": Flow("tcp", SOURCE, TARGET, 41000, 80),
}


def _flow_fields(packet: bytes) -> tuple[object, ...]:
    """What a load balancer may hash: addresses, protocol, the first 4 transport bytes."""
    ip = IP(packet)
    return (ip.src, ip.dst, ip.proto, bytes(ip.payload)[:4])


@pytest.mark.parametrize("probe", ["icmp", "udp", "tcp"])
def test_flow_fields_are_constant_across_ttls_and_probes(probe: str) -> None:
    packets = [build_probe(FLOWS[probe], ttl, probe_id) for ttl, probe_id in
               [(1, 1), (2, 2), (7, 999), (30, 65535)]]  # fmt: skip
    assert len({_flow_fields(p) for p in packets}) == 1
    assert [IP(p).ttl for p in packets] == [1, 2, 7, 30]


def test_icmp_checksum_is_constant_and_valid() -> None:
    packets = [IP(build_probe(FLOWS["icmp"], 3, probe_id)) for probe_id in (1, 2, 300, 65535)]
    assert len({p[ICMP].chksum for p in packets}) == 1
    for packet in packets:
        rebuilt = ICMP(bytes(packet[ICMP]))
        del rebuilt.chksum
        assert ICMP(bytes(rebuilt)).chksum == packet[ICMP].chksum  # a correct checksum
    assert [p[ICMP].seq for p in packets] == [1, 2, 300, 65535]


def test_udp_checksum_is_constant() -> None:
    packets = [IP(build_probe(FLOWS["udp"], ttl, ttl * 7)) for ttl in (1, 5, 9)]
    assert len({p[UDP].chksum for p in packets}) == 1
    assert [p.id for p in packets] == [7, 35, 63]


def test_probe_id_out_of_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        build_probe(FLOWS["udp"], 1, 0)


def _error_quoting(probe: bytes, icmp_type: int, code: int, source: str) -> bytes:
    """An ICMP error as a router sends it: its own IP header, then our packet's
    IP header and the first 8 bytes after it (RFC 792)."""
    sent = IP(probe)
    quoted = bytes(sent)[: sent.ihl * 4 + 8]
    return bytes(IP(src=source, dst=SOURCE) / ICMP(type=icmp_type, code=code) / Raw(quoted))


@pytest.mark.parametrize("probe", ["icmp", "udp", "tcp"])
def test_time_exceeded_is_matched_by_the_quoted_headers(probe: str) -> None:
    sent = build_probe(FLOWS[probe], 2, 777)
    answer = _error_quoting(sent, 11, 0, ROUTER)
    assert parse_reply(answer, FLOWS[probe]) == Reply(ROUTER, AnswerKind.TIME_EXCEEDED, 777)


@pytest.mark.parametrize("probe", ["icmp", "udp", "tcp"])
def test_errors_about_other_flows_are_not_ours(probe: str) -> None:
    flow = FLOWS[probe]
    other = Flow(probe, SOURCE, TARGET, flow.flow_id + 1, flow.port)
    answer = _error_quoting(build_probe(other, 2, 777), 11, 0, ROUTER)
    assert parse_reply(answer, flow) is None
    elsewhere = Flow(probe, SOURCE, "198.18.9.9", flow.flow_id, flow.port)
    assert parse_reply(_error_quoting(build_probe(elsewhere, 2, 5), 11, 0, ROUTER), flow) is None


def test_port_unreachable_from_the_target_is_the_destination() -> None:
    answer = _error_quoting(build_probe(FLOWS["udp"], 5, 12), 3, 3, TARGET)
    assert parse_reply(answer, FLOWS["udp"]) == Reply(TARGET, AnswerKind.DESTINATION, 12)


def test_unreachable_from_a_router_ends_the_path() -> None:
    answer = _error_quoting(build_probe(FLOWS["udp"], 5, 12), 3, 1, ROUTER)
    assert parse_reply(answer, FLOWS["udp"]) == Reply(ROUTER, AnswerKind.UNREACHABLE, 12)


def test_echo_reply_is_matched_by_identifier_and_sequence() -> None:
    reply = bytes(IP(src=TARGET, dst=SOURCE) / ICMP(type=0, id=4242, seq=31) / Raw(b"x" * 16))
    assert parse_reply(reply, FLOWS["icmp"]) == Reply(TARGET, AnswerKind.DESTINATION, 31)
    stranger = bytes(IP(src=TARGET, dst=SOURCE) / ICMP(type=0, id=1, seq=31))
    assert parse_reply(stranger, FLOWS["icmp"]) is None
    # Our own echo request (seen on loopback) is not an answer.
    assert parse_reply(build_probe(FLOWS["icmp"], 3, 31), FLOWS["icmp"]) is None


@pytest.mark.parametrize("flags", ["SA", "RA"])
def test_syn_ack_or_rst_from_the_target_is_the_destination(flags: str) -> None:
    flow = FLOWS["tcp"]
    probe_seq = IP(build_probe(flow, 5, 4321))[TCP].seq
    answer = bytes(IP(src=TARGET, dst=SOURCE) / TCP(sport=80, dport=41000, flags=flags,
                                                    ack=probe_seq + 1))  # fmt: skip
    assert parse_reply(answer, flow) == Reply(TARGET, AnswerKind.DESTINATION, 4321)
    wrong_port = bytes(IP(src=TARGET, dst=SOURCE) / TCP(sport=81, dport=41000, flags=flags,
                                                        ack=probe_seq + 1))  # fmt: skip
    assert parse_reply(wrong_port, flow) is None


def test_scapy_error_layers_agree_with_the_parser() -> None:
    # Cross-check with scapy's own view of a quoted packet.
    sent = build_probe(FLOWS["udp"], 4, 99)
    error = IP(_error_quoting(sent, 11, 0, ROUTER))
    assert error[IPerror].id == 99
    assert error[UDPerror].dport == 33434
    tcp_error = IP(_error_quoting(build_probe(FLOWS["tcp"], 4, 99), 11, 0, ROUTER))
    assert tcp_error[TCPerror].seq & 0xFFFF == 99


@pytest.mark.parametrize("garbage", [b"", b"\x45" * 19, bytes(40), b"\x60" + bytes(60)])
def test_garbage_is_not_an_answer(garbage: bytes) -> None:
    assert parse_reply(garbage, FLOWS["udp"]) is None


def test_truncated_quote_is_not_an_answer() -> None:
    sent = IP(build_probe(FLOWS["udp"], 2, 5))
    short = bytes(sent)[:24]  # less than the 8 transport bytes RFC 792 promises
    answer = bytes(IP(src=ROUTER, dst=SOURCE) / ICMP(type=11) / Raw(short))
    assert parse_reply(answer, FLOWS["udp"]) is None


def test_next_round_probes_up_to_the_end_or_again_all_the_way() -> None:
    ended = RoundResult(0, 0, 30, {5: _answer(TARGET, AnswerKind.DESTINATION)})
    assert next_limit(ended, 30, 30) == 5
    longer = RoundResult(1, 0, 5, {5: _answer(ROUTER, AnswerKind.TIME_EXCEEDED)})
    assert next_limit(longer, 5, 30) == 30
    lost = RoundResult(2, 0, 5, {})
    assert next_limit(lost, 5, 30) == 5
    assert PathTracker().update(lost) is None


def _answer(address: str, kind: AnswerKind) -> Answer:
    return Answer(address, 1, kind)


def _modules_after(statement: str) -> str:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60).stdout  # fmt: skip


def test_scapy_is_imported_only_when_a_trace_runs() -> None:
    assert "scapy" not in _modules_after("import agent.cli").split()
    assert "scapy" not in _modules_after("import agent.path.command").split()
    assert (
        "scapy"
        in _modules_after(
            "from agent.path.trace import Flow, build_probe; "
            "build_probe(Flow('udp', '192.0.2.1', '192.0.2.2', 1, 2), 1, 1)"
        ).split()
    )


def test_probe_ids_wrap_around_but_never_onto_a_waiting_probe() -> None:
    from agent.errors import ProbeSetupError
    from agent.path.session import _Probe, _Rounds

    rounds = _Rounds()
    rounds.probes[2] = _Probe(0, 1, 0, 0.0)
    assert [rounds.next_id() for _ in range(3)] == [1, 3, 4]
    rounds.probes = {i: _Probe(0, 1, 0, 0.0) for i in range(1, 0x10000)}
    with pytest.raises(ProbeSetupError, match="65535 probes"):
        rounds.next_id()
