"""Whatever an agent sends, the collector either accepts it whole or refuses it with a
reason: never another exception, and never something the store then chokes on."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from collector.errors import InvalidMessage
from collector.ingest.validate import (
    Limits,
    validate_batch,
    validate_config_status,
    validate_envelope,
    validate_heartbeat,
    validate_hello,
)
from collector.store.coverage import coverage, insert_drops, merge_window
from collector.store.sqlite import detail_json, migrate, observation_row
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up

NOW = time.time_ns()
LIMITS = Limits(max_batch_observations=50)
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
UINT32 = st.integers(min_value=0, max_value=2**32 - 1)
UINT64 = st.integers(min_value=0, max_value=2**64 - 1)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
TEXT = st.text(max_size=300)


def check_message(message: up.AgentMessage) -> None:
    """Validate like the ingest service; what passes must also be storable."""
    try:
        validate_envelope(message)
        body = message.WhichOneof("body")
        if body == "hello":
            validate_hello(message.hello)
        elif body == "heartbeat":
            validate_heartbeat(message.heartbeat)
        elif body == "config_status":
            validate_config_status(message.config_status)
        elif body == "batch":
            validate_batch(message.batch, NOW, LIMITS)
            check_storable(message.batch)
    except InvalidMessage:
        pass


def check_storable(batch: up.ObservationBatch) -> None:
    for o in batch.observations:
        observation_row("agent", 1, batch.sequence, o)
        text = detail_json(o)
        if text is not None:
            json.loads(text)
    # Drops and the window go into real tables (an integer beyond 64 bits would raise).
    with sqlite3.connect(":memory:", isolation_level=None) as conn:
        migrate(conn, Path(":memory:"))
        insert_drops(conn, "agent", 1, batch, NOW)
        merge_window(conn, "agent", batch.window_start_unix_ns, batch.window_end_unix_ns)
        stored = conn.execute("SELECT count(*) FROM spool_drops").fetchone()[0]
        assert stored == len(batch.spool_drops)
        covered = coverage(conn, "agent", 0, 2**63 - 1)
        start, end = batch.window_start_unix_ns, batch.window_end_unix_ns
        assert covered == ([(start, end)] if start < end else [])


@given(st.binary(max_size=4000))
@settings(max_examples=400, deadline=None)
def test_arbitrary_bytes(data: bytes) -> None:
    try:
        message = up.AgentMessage.FromString(data)
    except DecodeError:
        return  # gRPC refuses what does not parse
    check_message(message)


@st.composite
def observations(draw: st.DrawFn) -> pb.Observation:
    o = pb.Observation(
        check_id=draw(TEXT), kind=draw(st.integers(0, 12)), target=draw(TEXT),
        start_unix_ns=draw(st.one_of(INT64, st.just(NOW - 10**9))),
        duration_ns=draw(INT64), outcome=draw(st.integers(0, 9)),
        error_class=draw(st.integers(0, 20)), error_detail=draw(TEXT),
        packets_sent=draw(UINT32), packets_received=draw(UINT32),
    )  # fmt: skip
    if draw(st.booleans()):
        o.rtt.min_ns, o.rtt.mean_ns, o.rtt.max_ns = draw(INT64), draw(INT64), draw(INT64)
        o.rtt.samples_ns.extend(draw(st.lists(INT64, max_size=5)))
    detail = draw(st.sampled_from(["none", "http", "dns", "host"]))
    if detail == "http":
        o.http.status_code = draw(UINT32)
        o.http.time_to_first_byte_ns = draw(INT64)
        o.http.tls.cert_not_after_unix = draw(INT64)
        o.http.http_version = draw(TEXT)
    elif detail == "dns":
        o.dns.rcode = draw(TEXT)
        o.dns.answers.extend(draw(st.lists(TEXT, max_size=300)))
    elif detail == "host":
        o.host.memory_used_ratio = draw(FLOATS)
        o.host.load1 = draw(FLOATS)
        o.host.disks.add(mount=draw(TEXT), used_ratio=draw(FLOATS), total_bytes=draw(UINT64))
        o.host.findings.add(kind=draw(st.integers(0, 9)), value=draw(FLOATS))
    return o


@st.composite
def spool_drops(draw: st.DrawFn) -> up.SpoolDrop:
    return up.SpoolDrop(
        reason=draw(st.integers(0, 4)), dropped_unix_ns=draw(INT64),
        first_sequence=draw(UINT64), last_sequence=draw(UINT64), batches=draw(UINT64),
        observations=draw(UINT64), first_start_unix_ns=draw(INT64),
        last_start_unix_ns=draw(INT64), window_start_unix_ns=draw(INT64),
        window_end_unix_ns=draw(INT64),
    )  # fmt: skip


@given(
    st.lists(observations(), max_size=60),
    UINT64,
    st.lists(spool_drops(), max_size=70),
    st.tuples(INT64, INT64),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_batches(
    batch_observations: list[pb.Observation],
    sequence: int,
    drops: list[up.SpoolDrop],
    window: tuple[int, int],
) -> None:
    message = up.AgentMessage(batch=up.ObservationBatch(sequence=sequence))
    message.batch.observations.extend(batch_observations)
    message.batch.spool_drops.extend(drops)
    message.batch.window_start_unix_ns, message.batch.window_end_unix_ns = window
    check_message(message)


@given(TEXT, st.booleans(), st.text(max_size=5000), TEXT)
@settings(max_examples=200, deadline=None)
def test_arbitrary_config_statuses(
    version: str, accepted: bool, reason: str, config_version: str
) -> None:
    status = up.ConfigStatus(version=version, accepted=accepted, reason=reason)
    check_message(up.AgentMessage(config_status=status))
    hello = up.Hello(agent_id="a", sequence_epoch=1, config_version=config_version)
    check_message(up.AgentMessage(hello=hello))


@given(TEXT, UINT64, st.dictionaries(TEXT, TEXT, max_size=40), FLOATS, FLOATS)
@settings(max_examples=300, deadline=None)
def test_arbitrary_hellos_and_heartbeats(
    agent_id: str, epoch: int, labels: dict[str, str], load: float, cpu: float
) -> None:
    check_message(up.AgentMessage(hello=up.Hello(agent_id=agent_id, sequence_epoch=epoch,
                                                 labels=labels)))  # fmt: skip
    host = up.HostSnapshot(load1=load, cpu_ratio=cpu if not math.isnan(cpu) else 0.5)
    check_message(up.AgentMessage(heartbeat=up.Heartbeat(host=host)))


IDS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,40}\Z")
RATIO = st.floats(min_value=0.0, max_value=1.0)
NON_NEGATIVE = st.integers(min_value=0, max_value=2**62)


@st.composite
def valid_observations(draw: st.DrawFn) -> pb.Observation:
    sent = draw(st.integers(0, 1000))
    received = draw(st.integers(0, sent))
    o = pb.Observation(
        check_id=draw(IDS), kind=draw(st.integers(1, 8)),
        target=draw(st.text(min_size=1, max_size=255)),
        start_unix_ns=NOW - draw(st.integers(0, 10**15)),
        duration_ns=draw(st.integers(0, 10**12)), outcome=draw(st.integers(1, 6)),
        error_class=draw(st.integers(0, 16)), error_detail=draw(st.text(max_size=1024)),
        packets_sent=sent, packets_received=received,
    )  # fmt: skip
    samples = draw(st.lists(NON_NEGATIVE, max_size=received))
    if samples:
        o.rtt.samples_ns.extend(samples)
        o.rtt.min_ns, o.rtt.max_ns = min(samples), max(samples)
        o.rtt.mean_ns = sum(samples) // len(samples)
    if draw(st.booleans()):
        o.host.memory_used_ratio = draw(RATIO)
        o.host.disks.add(mount=draw(st.text(max_size=256)), used_ratio=draw(RATIO))
        o.host.findings.add(kind=draw(st.integers(1, 5)), value=draw(RATIO))
    return o


@st.composite
def valid_drops(draw: st.DrawFn, sequence: int) -> up.SpoolDrop:
    last = draw(st.integers(1, sequence - 1))
    first = draw(st.integers(1, last))
    batches = last - first + 1
    observations = draw(st.integers(0, min(batches * LIMITS.max_batch_observations, 2**63 - 1)))
    first_start, last_start = sorted(draw(st.tuples(INT64, INT64)))
    window_start, window_end = sorted(draw(st.tuples(INT64, INT64)))
    return up.SpoolDrop(
        reason=draw(st.sampled_from([up.SpoolDrop.REASON_SIZE, up.SpoolDrop.REASON_AGE])),
        dropped_unix_ns=draw(INT64), first_sequence=first, last_sequence=last,
        batches=batches, observations=observations, first_start_unix_ns=first_start,
        last_start_unix_ns=last_start, window_start_unix_ns=window_start,
        window_end_unix_ns=window_end,
    )  # fmt: skip


@st.composite
def valid_batches(draw: st.DrawFn) -> up.ObservationBatch:
    sequence = draw(st.integers(1, 2**63 - 1))
    batch = up.ObservationBatch(sequence=sequence)
    drops = draw(st.lists(valid_drops(sequence), max_size=64)) if sequence > 1 else []
    batch.spool_drops.extend(drops)
    # One observation per round: a (check, start) pair appears once in a batch.
    batch.observations.extend(
        draw(st.lists(valid_observations(), min_size=0 if drops else 1, max_size=50,
                      unique_by=lambda o: (o.check_id, o.start_unix_ns)))
    )  # fmt: skip
    if draw(st.booleans()):  # else 0, 0: an agent older than windows
        end = NOW + draw(st.integers(-(10**15), LIMITS.max_future_ns))
        batch.window_start_unix_ns = end - draw(st.integers(0, min(86_400 * 10**9, end - 1)))
        batch.window_end_unix_ns = end
    return batch


@given(valid_batches())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_valid_batch_is_accepted_and_storable(batch: up.ObservationBatch) -> None:
    validate_batch(batch, NOW, LIMITS)  # must not raise
    check_storable(batch)
    for o in batch.observations:
        row = observation_row("agent", 1, batch.sequence, o)
        assert row[3] == o.check_id


@given(valid_batches(), st.data())
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_round_repeated_inside_a_valid_batch_rejects_it(
    batch: up.ObservationBatch, data: st.DataObject
) -> None:
    assume(len(batch.observations) > 0)
    index = data.draw(st.integers(0, len(batch.observations) - 1))
    repeat = pb.Observation()
    repeat.CopyFrom(batch.observations[index])
    repeat.error_detail = "the same round, told twice"
    batch.observations.insert(data.draw(st.integers(index + 1, len(batch.observations))), repeat)
    assume(len(batch.observations) <= LIMITS.max_batch_observations)
    with pytest.raises(InvalidMessage) as info:
        validate_batch(batch, NOW, LIMITS)
    assert info.value.rule == "duplicate_observation"
    assert f"repeats observations[{index}]" in info.value.reason
