"""The collector refuses every message that breaks the wire contract, naming why."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from collector.errors import InvalidMessage
from collector.ingest.validate import (
    RULES,
    Limits,
    validate_batch,
    validate_envelope,
    validate_heartbeat,
    validate_hello,
)
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up

NOW = time.time_ns()
LIMITS = Limits(max_batch_observations=100)


def good_observation() -> pb.Observation:
    o = pb.Observation(
        check_id="icmp-1", kind=pb.CHECK_KIND_ICMP, target="198.18.0.1",
        start_unix_ns=NOW - 10**9, duration_ns=2_000_000, outcome=pb.OUTCOME_OK,
        packets_sent=3, packets_received=2,
    )  # fmt: skip
    o.rtt.min_ns, o.rtt.mean_ns, o.rtt.max_ns = 100, 150, 200
    o.rtt.samples_ns.extend([100, 200])
    return o


def batch_of(*observations: pb.Observation, sequence: int = 1) -> up.ObservationBatch:
    batch = up.ObservationBatch(sequence=sequence)
    batch.observations.extend(observations)
    return batch


def test_a_good_batch_passes() -> None:
    validate_batch(batch_of(good_observation(), good_observation()), NOW, LIMITS)


def _mutate(change: Callable[[pb.Observation], None]) -> pb.Observation:
    o = good_observation()
    change(o)
    return o


BAD_OBSERVATIONS = {
    "negative duration": (lambda o: setattr(o, "duration_ns", -5), "bad_duration",
                          "duration_ns"),
    "far future": (lambda o: setattr(o, "start_unix_ns", NOW + 3600 * 10**9), "bad_time",
                   "in the future"),
    "ancient": (lambda o: setattr(o, "start_unix_ns", 10**9), "bad_time", "older"),
    "more received than sent": (lambda o: setattr(o, "packets_received", 9), "bad_packets",
                                "received 9 of sent 3"),
    "unknown kind": (lambda o: setattr(o, "kind", 99), "bad_enum", "kind: 99"),
    "unspecified outcome": (lambda o: setattr(o, "outcome", 0), "bad_enum", "outcome: 0"),
    "unknown error class": (lambda o: setattr(o, "error_class", 77), "bad_enum",
                            "error_class"),
    "empty check id": (lambda o: setattr(o, "check_id", ""), "bad_check", "check_id"),
    "empty target": (lambda o: setattr(o, "target", ""), "bad_check", "target"),
    "huge target": (lambda o: setattr(o, "target", "x" * 300), "too_long", "target"),
    "negative rtt sample": (lambda o: o.rtt.samples_ns.__setitem__(0, -1), "bad_rtt",
                            "negative"),
    "min above max": (lambda o: setattr(o.rtt, "min_ns", 500), "bad_rtt", "min <= mean"),
    "more samples than replies": (lambda o: o.rtt.samples_ns.append(5), "bad_rtt",
                                  "3 samples for 2 received"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_OBSERVATIONS))
def test_bad_observation_rejects_the_batch_naming_it(case: str) -> None:
    change, rule, fragment = BAD_OBSERVATIONS[case]
    batch = batch_of(good_observation(), _mutate(change))
    with pytest.raises(InvalidMessage) as info:
        validate_batch(batch, NOW, LIMITS)
    assert info.value.rule == rule
    assert info.value.rule in RULES
    assert "observations[1]" in info.value.reason
    assert fragment in info.value.reason


def test_unknown_fields_are_rejected_with_their_numbers() -> None:
    raw = good_observation().SerializeToString() + bytes([0xF8, 0x07, 0x01])  # field 127
    batch = up.ObservationBatch(sequence=1)
    batch.observations.add().MergeFromString(raw)
    with pytest.raises(
        InvalidMessage, match=r"observations\[0\]: unknown field number\(s\) \[127\]"
    ):
        validate_batch(batch, NOW, LIMITS)


def test_oversized_and_empty_batches() -> None:
    big = batch_of(*[good_observation() for _ in range(101)])
    with pytest.raises(InvalidMessage, match="101, limit 100"):
        validate_batch(big, NOW, LIMITS)
    with pytest.raises(InvalidMessage, match="empty"):
        validate_batch(up.ObservationBatch(sequence=1), NOW, LIMITS)
    for sequence in (0, 2**63):  # SQLite stores signed 64-bit integers
        with pytest.raises(InvalidMessage, match=r"must be in 1\.\.2\^63-1"):
            validate_batch(batch_of(good_observation(), sequence=sequence), NOW, LIMITS)


@pytest.mark.parametrize(
    ("hello", "fragment"),
    [
        (up.Hello(agent_id="", sequence_epoch=1), "agent_id"),
        (up.Hello(agent_id="a b", sequence_epoch=1), "agent_id"),
        (up.Hello(agent_id="a", sequence_epoch=0), "sequence_epoch"),
        (up.Hello(agent_id="a", sequence_epoch=2**63), "sequence_epoch"),
        (up.Hello(agent_id="a", sequence_epoch=1, labels={"bad-key": "v"}), "bad key"),
        (up.Hello(agent_id="a", sequence_epoch=1, labels={"k": "v" * 300}), r"labels\[k\]"),
        (up.Hello(agent_id="a", sequence_epoch=1,
                  labels={f"k{i}": "v" for i in range(40)}), "limit 32"),
    ],
)  # fmt: skip
def test_bad_hello(hello: up.Hello, fragment: str) -> None:
    with pytest.raises(InvalidMessage, match=fragment):
        validate_hello(hello)


def test_empty_envelope_and_bad_heartbeat() -> None:
    with pytest.raises(InvalidMessage, match="empty"):
        validate_envelope(up.AgentMessage())
    heartbeat = up.Heartbeat(host=up.HostSnapshot(cpu_ratio=3.0))
    with pytest.raises(InvalidMessage, match="cpu_ratio"):
        validate_heartbeat(heartbeat)
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(InvalidMessage, match=r"load1: .* is not finite >= 0"):
            validate_heartbeat(up.Heartbeat(host=up.HostSnapshot(load1=bad)))


def _with_host_detail(change: Callable[[pb.HostDetail], None]) -> up.ObservationBatch:
    o = good_observation()
    o.kind = pb.CHECK_KIND_HOST
    o.host.memory_used_ratio = 0.5
    o.host.disks.add(mount="/", used_ratio=0.4)
    change(o.host)
    return batch_of(o)


def test_a_good_detail_passes() -> None:
    validate_batch(_with_host_detail(lambda h: None), NOW, LIMITS)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda h: setattr(h, "memory_used_ratio", 1.5), "host.memory_used_ratio: ratio 1.5"),
        (lambda h: setattr(h, "load1", float("nan")), "host.load1: nan"),
        (lambda h: setattr(h.disks[0], "used_ratio", -0.1), r"host.disks\[0\].used_ratio"),
        (lambda h: setattr(h.disks[0], "mount", "m" * 300), r"host.disks\[0\].mount: 300"),
        (lambda h: [h.processes.add(name="p") for _ in range(300)], "300 items"),
        (lambda h: h.findings.add(kind=77), r"host.findings\[0\].kind: 77"),
    ],
)
def test_bad_detail_is_rejected_naming_the_field(
    change: Callable[[pb.HostDetail], None], fragment: str
) -> None:
    with pytest.raises(InvalidMessage, match=fragment):
        validate_batch(_with_host_detail(change), NOW, LIMITS)


def test_unknown_field_deep_inside_a_detail_is_rejected() -> None:
    o = good_observation()
    disk = pb.DiskUsage(mount="/")
    o.host.disks.add().MergeFromString(disk.SerializeToString() + bytes([0xF8, 0x07, 0x01]))
    with pytest.raises(InvalidMessage, match=r"host.disks\[0\]: unknown field number"):
        validate_batch(batch_of(o), NOW, LIMITS)
