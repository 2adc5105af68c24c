"""The collector refuses every message that breaks the wire contract, naming why."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from collector.errors import InvalidMessage
from collector.ingest.validate import (
    MAX_SPOOL_DROPS,
    RULES,
    Limits,
    validate_batch,
    validate_config_status,
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
    later = good_observation()
    later.start_unix_ns += 10**9  # the next round of the same check
    validate_batch(batch_of(good_observation(), later), NOW, LIMITS)


def test_a_check_twice_at_the_same_start_in_one_batch_rejects_it() -> None:
    """One round is one observation: the same (check, start) twice would be stored twice."""
    other_check, later = good_observation(), good_observation()
    other_check.check_id = "icmp-2"  # another check may start at the same instant
    later.start_unix_ns += 1
    again = good_observation()
    again.outcome = pb.OUTCOME_TIMEOUT  # a repeat need not be identical to count
    batch = batch_of(good_observation(), other_check, later, again)
    validate_batch(batch_of(*batch.observations[:3]), NOW, LIMITS)
    with pytest.raises(InvalidMessage) as info:
        validate_batch(batch, NOW, LIMITS)
    assert info.value.rule == "duplicate_observation"
    assert info.value.rule in RULES
    assert info.value.reason == (
        f"observations[3].start_unix_ns: {NOW - 10**9} repeats observations[0] of "
        "check 'icmp-1' (a round is one observation)"
    )


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


SECOND = 10**9


def good_drop(**fields: int) -> up.SpoolDrop:
    """Batches 3..5 (120 observations) dropped for size, reported in batch 9."""
    drop = up.SpoolDrop(
        reason=up.SpoolDrop.REASON_SIZE, dropped_unix_ns=NOW - SECOND, first_sequence=3,
        last_sequence=5, batches=3, observations=120, first_start_unix_ns=NOW - 90 * SECOND,
        last_start_unix_ns=NOW - 60 * SECOND, window_start_unix_ns=NOW - 90 * SECOND,
        window_end_unix_ns=NOW - 59 * SECOND,
    )  # fmt: skip
    for name, value in fields.items():
        setattr(drop, name, value)
    return drop


def windowed(start: int, end: int, *drops: up.SpoolDrop, sequence: int = 9) -> up.ObservationBatch:
    batch = batch_of(good_observation(), sequence=sequence)
    batch.window_start_unix_ns, batch.window_end_unix_ns = start, end
    batch.spool_drops.extend(drops)
    return batch


def test_windows_and_drop_reports_pass() -> None:
    validate_batch(windowed(NOW - 30 * SECOND, NOW, good_drop()), NOW, LIMITS)
    validate_batch(windowed(0, 0), NOW, LIMITS)  # an agent older than windows
    validate_batch(windowed(NOW, NOW), NOW, LIMITS)  # an empty window is no contradiction
    # Within the clock-skew allowance, and exactly one day long.
    validate_batch(windowed(NOW - 86_100 * SECOND, NOW + 300 * SECOND), NOW, LIMITS)
    # A drop of batches 1..8 (the most batch 9 can report), without observations.
    empty_run = good_drop(first_sequence=1, last_sequence=8, batches=8, observations=0,
                          first_start_unix_ns=5, last_start_unix_ns=0)  # fmt: skip
    validate_batch(windowed(NOW - SECOND, NOW, empty_run), NOW, LIMITS)


def test_a_batch_of_drop_reports_only_passes_but_an_empty_one_does_not() -> None:
    only_drops = up.ObservationBatch(sequence=9, spool_drops=[good_drop()])
    validate_batch(only_drops, NOW, LIMITS)
    with pytest.raises(InvalidMessage, match="empty"):
        validate_batch(up.ObservationBatch(sequence=9, window_start_unix_ns=1,
                                           window_end_unix_ns=2), NOW, LIMITS)  # fmt: skip


BAD_WINDOWS = {
    "start only": (0, NOW, "window_start_unix_ns: need 0 < start"),
    "end only": (NOW, 0, "window_start_unix_ns: need 0 < start"),
    "negative": (-5, NOW, "window_start_unix_ns: need 0 < start"),
    "reversed": (NOW, NOW - 1, "window_start_unix_ns: need 0 < start"),
    "future": (NOW, NOW + 301 * SECOND, "window_end_unix_ns: 301s in the future"),
    "too long": (NOW - 86_401 * SECOND, NOW, "spans 86401s, limit 86400s"),
}


@pytest.mark.parametrize("case", sorted(BAD_WINDOWS))
def test_bad_windows_are_rejected(case: str) -> None:
    start, end, fragment = BAD_WINDOWS[case]
    with pytest.raises(InvalidMessage) as info:
        validate_batch(windowed(start, end), NOW, LIMITS)
    assert info.value.rule == "bad_time"
    assert fragment in info.value.reason


BAD_DROPS = {
    "unspecified reason": ({"reason": 0}, "bad_enum", "reason: 0"),
    "unknown reason": ({"reason": 7}, "bad_enum", "reason: 7"),
    "first after last": ({"first_sequence": 6}, "bad_sequence", "last_sequence: need"),
    "first is 0": ({"first_sequence": 0, "batches": 6}, "bad_sequence", "last_sequence: need"),
    "the reporting batch itself": ({"last_sequence": 9, "batches": 7}, "bad_sequence",
                                   "last_sequence: 9 is not below the batch's 9"),
    "a later batch": ({"first_sequence": 10, "last_sequence": 12}, "bad_sequence",
                      "last_sequence: 12 is not below"),
    "batches miscounted": ({"batches": 4}, "bad_drop", "batches: 4, but sequences 3..5 are 3"),
    "no batches": ({"batches": 0}, "bad_drop", "batches: 0"),
    "too many observations": ({"observations": 301}, "bad_drop",
                              "observations: 301 in 3 batch(es), limit 300"),
    "first start after last": ({"first_start_unix_ns": NOW}, "bad_time",
                               "first_start_unix_ns: after last_start_unix_ns"),
    "window reversed": ({"window_start_unix_ns": NOW}, "bad_time",
                        "window_start_unix_ns: after window_end_unix_ns"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_DROPS))
def test_bad_drop_report_rejects_the_batch_naming_it(case: str) -> None:
    fields, rule, fragment = BAD_DROPS[case]
    batch = windowed(NOW - SECOND, NOW, good_drop(), good_drop(**fields))
    with pytest.raises(InvalidMessage) as info:
        validate_batch(batch, NOW, LIMITS)
    assert info.value.rule == rule
    assert info.value.rule in RULES
    assert info.value.reason.startswith("spool_drops[1].")
    assert fragment in info.value.reason


def test_drop_reports_per_batch_are_bounded() -> None:
    validate_batch(windowed(0, 0, *[good_drop()] * MAX_SPOOL_DROPS), NOW, LIMITS)
    with pytest.raises(InvalidMessage, match=f"spool_drops: 65, limit {MAX_SPOOL_DROPS}"):
        validate_batch(windowed(0, 0, *[good_drop()] * (MAX_SPOOL_DROPS + 1)), NOW, LIMITS)


def test_unknown_field_in_a_drop_report_is_rejected() -> None:
    batch = windowed(0, 0)
    batch.spool_drops.add().MergeFromString(
        good_drop().SerializeToString() + bytes([0xF8, 0x07, 0x01])
    )
    with pytest.raises(InvalidMessage, match=r"spool_drops\[0\]: unknown field number"):
        validate_batch(batch, NOW, LIMITS)


def test_config_version_and_status_lengths() -> None:
    validate_hello(up.Hello(agent_id="a", sequence_epoch=1, config_version="v" * 64))
    with pytest.raises(InvalidMessage, match=r"hello.config_version: 65 characters, limit 64"):
        validate_hello(up.Hello(agent_id="a", sequence_epoch=1, config_version="v" * 65))
    validate_config_status(up.ConfigStatus(version="v" * 64, accepted=False, reason="r" * 4096))
    for status, fragment in (
        (up.ConfigStatus(version="v" * 65), "config_status.version: 65 characters"),
        (up.ConfigStatus(version="v", reason="r" * 4097), "config_status.reason: 4097"),
    ):
        with pytest.raises(InvalidMessage, match=fragment) as info:
            validate_config_status(status)
        assert info.value.rule == "too_long"


def test_egress_loss_detail_is_validated_like_any_detail() -> None:
    o = good_observation()
    o.kind = pb.CHECK_KIND_EGRESS_LOSS
    o.egress_loss.verdict = pb.EgressLossDetail.VERDICT_EXCESS
    o.egress_loss.threshold_ratio = 0.01
    o.egress_loss.loss_lower_ratio = 0.02
    o.egress_loss.loss_upper_ratio = 0.05
    o.egress_loss.beyond.address = "198.18.3.2"
    validate_batch(batch_of(o), NOW, LIMITS)
    o.egress_loss.beyond.loss_upper_ratio = 1.5
    with pytest.raises(InvalidMessage, match=r"egress_loss\.beyond\.loss_upper_ratio: ratio 1\.5"):
        validate_batch(batch_of(o), NOW, LIMITS)
    o.egress_loss.beyond.loss_upper_ratio = 0.1
    o.egress_loss.verdict = 9  # type: ignore[assignment]
    with pytest.raises(InvalidMessage, match=r"egress_loss\.verdict: 9"):
        validate_batch(batch_of(o), NOW, LIMITS)


def test_a_hop_answering_more_probes_than_were_sent_rejects_the_batch() -> None:
    """(sent - received) / sent is the hop's loss: more answers than probes is no ratio."""
    o = good_observation()
    o.kind = pb.CHECK_KIND_PATH
    o.path.hops.add(ttl=1, address="198.18.0.1", sent=5, received=5)
    o.path.hops.add(ttl=2, address="", sent=0, received=0)  # a TTL this trace did not probe
    validate_batch(batch_of(o), NOW, LIMITS)
    o.path.hops.add(ttl=3, address="198.18.0.2", sent=5, received=6)
    with pytest.raises(InvalidMessage) as info:
        validate_batch(batch_of(o), NOW, LIMITS)
    assert info.value.rule == "bad_packets"
    assert info.value.reason == "observations[0].path.hops[2]: received 6 of sent 5"
    egress = good_observation()
    egress.kind = pb.CHECK_KIND_EGRESS_LOSS
    egress.egress_loss.verdict = pb.EgressLossDetail.VERDICT_CLEAR
    egress.egress_loss.border.sent, egress.egress_loss.border.received = 3, 4
    with pytest.raises(InvalidMessage, match=r"egress_loss\.border: received 4 of sent 3"):
        validate_batch(batch_of(egress), NOW, LIMITS)
