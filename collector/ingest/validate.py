"""Checks every message from an agent against the wire contract before anything is stored.

A batch is accepted or rejected as a whole: one bad observation rejects the
batch with a reason that names it (``observations[3].duration_ns: negative``),
and nothing of it is stored.

Unknown fields are rejected too. A field the collector does not understand
would be silently dropped, and observations decide money; so agents are
upgraded after the collector, never before (see docs/architecture.md).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from collector.errors import InvalidMessage
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
LABEL_KEY_PATTERN = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")
MAX_LABELS = 32
MAX_LABEL_VALUE = 256
MAX_TARGET = 255
MAX_DETAIL = 1024
MAX_PACKETS = 100_000
MAX_DURATION_NS = 86_400 * 10**9
# A batch window longer than this is not a batch but a broken clock.
MAX_WINDOW_NS = 86_400 * 10**9
MAX_SPOOL_DROPS = 64
MAX_CONFIG_VERSION = 64
MAX_CONFIG_REASON = 4096
# uint64 fields that are stored must fit SQLite's signed 64-bit integers.
MAX_SQL_INTEGER = 2**63 - 1

# Rule codes: the bounded vocabulary of rejections (metric label values). The one list:
# every rule an InvalidMessage or a refusal in ingest/service.py names is here, and the
# metrics give each its series at start (tests/unit/test_rejection_rules.py holds both
# to it).
RULES = (
    "unknown_field",
    "bad_identity",
    "bad_labels",
    "bad_sequence",
    "oversized_batch",
    "empty_batch",
    "bad_check",
    "bad_enum",
    "bad_time",
    "bad_duration",
    "bad_packets",
    "bad_rtt",
    "bad_drop",
    "duplicate_observation",
    "too_long",
    "protocol",
    "too_many_streams",
    "revoked",
)


@dataclass(frozen=True, slots=True)
class Limits:
    max_batch_observations: int = 10_000
    # Observations may start at most this far in the future (clock skew) ...
    max_future_ns: int = 300 * 10**9
    # ... and at most this far in the past (replays after a long partition).
    max_age_ns: int = 40 * 86_400 * 10**9


def _reject_unknown(message: Message, path: str) -> None:
    unknown = UnknownFieldSet(message)
    if len(unknown):
        numbers = sorted({unknown[i].field_number for i in range(len(unknown))})
        raise InvalidMessage(
            "unknown_field",
            f"{path}: unknown field number(s) {numbers}; upgrade the collector first",
        )


def _check_length(value: str, limit: int, path: str) -> None:
    if len(value) > limit:
        raise InvalidMessage("too_long", f"{path}: {len(value)} characters, limit {limit}")


def validate_envelope(message: up.AgentMessage) -> None:
    _reject_unknown(message, "message")
    if message.WhichOneof("body") is None:
        raise InvalidMessage(
            "protocol", "message: empty (no hello, batch, heartbeat or config status)"
        )


def validate_hello(hello: up.Hello) -> None:
    _reject_unknown(hello, "hello")
    if not ID_PATTERN.match(hello.agent_id):
        raise InvalidMessage(
            "bad_identity",
            f"hello.agent_id: {hello.agent_id[:64]!r} must match {ID_PATTERN.pattern}",
        )
    if not 0 < hello.sequence_epoch <= MAX_SQL_INTEGER:
        raise InvalidMessage("bad_sequence", "hello.sequence_epoch: must be in 1..2^63-1")
    if len(hello.labels) > MAX_LABELS:
        raise InvalidMessage("bad_labels", f"hello.labels: {len(hello.labels)}, limit {MAX_LABELS}")
    for key, value in hello.labels.items():
        if not LABEL_KEY_PATTERN.match(key):
            raise InvalidMessage("bad_labels", f"hello.labels: bad key {key[:64]!r}")
        _check_length(value, MAX_LABEL_VALUE, f"hello.labels[{key}]")
    for name in ("software_version", "boot_id", "hostname"):
        _check_length(getattr(hello, name), MAX_LABEL_VALUE, f"hello.{name}")
    _check_length(hello.config_version, MAX_CONFIG_VERSION, "hello.config_version")


def validate_config_status(status: up.ConfigStatus) -> None:
    _reject_unknown(status, "config_status")
    _check_length(status.version, MAX_CONFIG_VERSION, "config_status.version")
    _check_length(status.reason, MAX_CONFIG_REASON, "config_status.reason")


def validate_heartbeat(heartbeat: up.Heartbeat) -> None:
    _reject_unknown(heartbeat, "heartbeat")
    _reject_unknown(heartbeat.host, "heartbeat.host")
    host = heartbeat.host
    for name in ("cpu_ratio", "memory_used_ratio"):
        value = getattr(host, name)
        if not 0.0 <= value <= 1.0:
            raise InvalidMessage("protocol", f"heartbeat.host.{name}: {value} outside [0, 1]")
    for name in ("load1", "agent_cpu_seconds"):
        value = getattr(host, name)
        if not 0.0 <= value < math.inf:  # also refuses NaN
            raise InvalidMessage("protocol", f"heartbeat.host.{name}: {value} is not finite >= 0")
    for name in ("boot_time_unix", "agent_rss_bytes", "rounds_skipped"):
        if getattr(host, name) > MAX_SQL_INTEGER or getattr(host, name) < 0:
            raise InvalidMessage("protocol", f"heartbeat.host.{name}: out of range")


def validate_batch(batch: up.ObservationBatch, now_ns: int, limits: Limits) -> None:
    _reject_unknown(batch, "batch")
    if not 0 < batch.sequence <= MAX_SQL_INTEGER:
        raise InvalidMessage("bad_sequence", "batch.sequence: must be in 1..2^63-1")
    count = len(batch.observations)
    # A batch may carry only drop reports: the agent reports a drop in the next batch
    # it seals, even when nothing else finished meanwhile.
    if count == 0 and not batch.spool_drops:
        raise InvalidMessage("empty_batch", "batch.observations: empty")
    if count > limits.max_batch_observations:
        raise InvalidMessage(
            "oversized_batch",
            f"batch.observations: {count}, limit {limits.max_batch_observations}",
        )
    _validate_window(batch.window_start_unix_ns, batch.window_end_unix_ns, now_ns, limits)
    _validate_spool_drops(batch, limits)
    # One round of a check is one observation, named by (check, start): a batch that
    # carries one twice is broken, and storing it would count the round twice. (The
    # same batch sent twice is not this: the store answers it DUPLICATE by sequence.)
    rounds: dict[tuple[str, int], int] = {}
    for index, observation in enumerate(batch.observations):
        validate_observation(observation, f"observations[{index}]", now_ns, limits)
        first = rounds.setdefault((observation.check_id, observation.start_unix_ns), index)
        if first != index:
            raise InvalidMessage(
                "duplicate_observation",
                f"observations[{index}].start_unix_ns: {observation.start_unix_ns} repeats "
                f"observations[{first}] of check {observation.check_id!r} "
                "(a round is one observation)",
            )


def _validate_window(start: int, end: int, now_ns: int, limits: Limits) -> None:
    """Both 0 (an agent older than windows: nothing is derived from it), or a real span."""
    if start == 0 and end == 0:
        return
    if not 0 < start <= end:
        raise InvalidMessage(
            "bad_time",
            f"batch.window_start_unix_ns: need 0 < start <= window_end_unix_ns, got {start}, {end}",
        )
    if end > now_ns + limits.max_future_ns:
        ahead = (end - now_ns) / 1e9
        raise InvalidMessage("bad_time", f"batch.window_end_unix_ns: {ahead:.0f}s in the future")
    if end - start > MAX_WINDOW_NS:
        raise InvalidMessage(
            "bad_time",
            f"batch.window_end_unix_ns: the window spans {(end - start) / 1e9:.0f}s, "
            f"limit {MAX_WINDOW_NS // 10**9}s",
        )


def _validate_spool_drops(batch: up.ObservationBatch, limits: Limits) -> None:
    if len(batch.spool_drops) > MAX_SPOOL_DROPS:
        raise InvalidMessage(
            "oversized_batch",
            f"batch.spool_drops: {len(batch.spool_drops)}, limit {MAX_SPOOL_DROPS}",
        )
    for index, drop in enumerate(batch.spool_drops):
        validate_spool_drop(drop, f"spool_drops[{index}]", batch.sequence, limits)


def validate_spool_drop(drop: up.SpoolDrop, path: str, sequence: int, limits: Limits) -> None:
    """A run of dropped batches, reported in a later batch of the same epoch."""
    _reject_unknown(drop, path)
    _check_enum(up.SpoolDrop.Reason, drop.reason, f"{path}.reason")
    if not 0 < drop.first_sequence <= drop.last_sequence:
        raise InvalidMessage(
            "bad_sequence",
            f"{path}.last_sequence: need 0 < first_sequence <= last_sequence, "
            f"got {drop.first_sequence}, {drop.last_sequence}",
        )
    # Only batches sealed before the reporting one can have been dropped.
    if drop.last_sequence >= sequence:
        raise InvalidMessage(
            "bad_sequence",
            f"{path}.last_sequence: {drop.last_sequence} is not below the batch's {sequence}",
        )
    if drop.batches != drop.last_sequence - drop.first_sequence + 1:
        raise InvalidMessage(
            "bad_drop",
            f"{path}.batches: {drop.batches}, but sequences "
            f"{drop.first_sequence}..{drop.last_sequence} are "
            f"{drop.last_sequence - drop.first_sequence + 1}",
        )
    limit = min(drop.batches * limits.max_batch_observations, MAX_SQL_INTEGER)
    if drop.observations > limit:
        raise InvalidMessage(
            "bad_drop",
            f"{path}.observations: {drop.observations} in {drop.batches} batch(es), limit {limit}",
        )
    if drop.observations > 0 and drop.first_start_unix_ns > drop.last_start_unix_ns:
        raise InvalidMessage("bad_time", f"{path}.first_start_unix_ns: after last_start_unix_ns")
    if drop.window_start_unix_ns > drop.window_end_unix_ns:
        raise InvalidMessage("bad_time", f"{path}.window_start_unix_ns: after window_end_unix_ns")


def _check_enum(enum: type, value: int, path: str) -> None:
    # proto3 enums are open: an unknown number arrives as a plain int.
    if value not in enum.values() or value == 0:  # type: ignore[attr-defined]
        raise InvalidMessage("bad_enum", f"{path}: {value} is not a known value")


def validate_observation(o: pb.Observation, path: str, now_ns: int, limits: Limits) -> None:
    _reject_unknown(o, path)
    if o.HasField("rtt"):
        _reject_unknown(o.rtt, f"{path}.rtt")
    if not ID_PATTERN.match(o.check_id):
        raise InvalidMessage("bad_check", f"{path}.check_id: {o.check_id[:64]!r} is not a valid id")
    if not o.target:
        raise InvalidMessage("bad_check", f"{path}.target: empty")
    _check_length(o.target, MAX_TARGET, f"{path}.target")
    _check_length(o.error_detail, MAX_DETAIL, f"{path}.error_detail")
    _check_enum(pb.CheckKind, o.kind, f"{path}.kind")
    _check_enum(pb.Outcome, o.outcome, f"{path}.outcome")
    if o.error_class not in pb.ErrorClass.values():
        raise InvalidMessage("bad_enum", f"{path}.error_class: {o.error_class} is not known")
    if o.start_unix_ns > now_ns + limits.max_future_ns:
        ahead = (o.start_unix_ns - now_ns) / 1e9
        raise InvalidMessage("bad_time", f"{path}.start_unix_ns: {ahead:.0f}s in the future")
    if o.start_unix_ns < now_ns - limits.max_age_ns:
        raise InvalidMessage("bad_time", f"{path}.start_unix_ns: older than the accepted age")
    if not 0 <= o.duration_ns <= MAX_DURATION_NS:
        raise InvalidMessage("bad_duration", f"{path}.duration_ns: {o.duration_ns} out of range")
    if o.packets_sent > MAX_PACKETS or o.packets_received > o.packets_sent:
        raise InvalidMessage(
            "bad_packets",
            f"{path}: received {o.packets_received} of sent {o.packets_sent}",
        )
    _validate_rtt(o, path)
    detail_kind = o.WhichOneof("detail")
    if detail_kind is not None:
        validate_detail(getattr(o, detail_kind), f"{path}.{detail_kind}")


MAX_DETAIL_ITEMS = 256
MAX_DETAIL_STRING = 256


def validate_detail(message: Message, path: str) -> None:
    """Walk a typed detail (HTTP, mail, DNS, host): no unknown fields at any depth,
    bounded strings and lists, finite non-negative numbers, ratios within [0, 1],
    enums with known values, never more received than sent. Generic, so a new detail
    message is covered as is."""
    _reject_unknown(message, path)
    _check_answers(message, path)
    for field, value in message.ListFields():
        where = f"{path}.{field.name}"
        items = list(value) if field.is_repeated else [value]
        if len(items) > MAX_DETAIL_ITEMS:
            raise InvalidMessage(
                "too_long", f"{where}: {len(items)} items, limit {MAX_DETAIL_ITEMS}"
            )
        for index, item in enumerate(items):
            item_path = f"{where}[{index}]" if field.is_repeated else where
            _validate_value(field, item, item_path)


def _check_answers(message: Message, path: str) -> None:
    """A detail counting its own probes (a path hop, an egress-loss hop): more answers
    than probes is no loss ratio at all (the metrics compute (sent - received) / sent)."""
    names = ("sent", "received")
    if all(name in message.DESCRIPTOR.fields_by_name for name in names):
        sent, received = (getattr(message, name) for name in names)
        if received > sent:
            raise InvalidMessage("bad_packets", f"{path}: received {received} of sent {sent}")


def _validate_value(field: FieldDescriptor, value: object, path: str) -> None:
    if field.type == field.TYPE_MESSAGE:
        assert isinstance(value, Message)
        validate_detail(value, path)
    elif field.type == field.TYPE_STRING:
        _check_length(str(value), MAX_DETAIL_STRING, path)
    elif field.type == field.TYPE_ENUM:
        _check_enum_value(field, int(value), path)  # type: ignore[call-overload]
    elif field.type in (field.TYPE_DOUBLE, field.TYPE_INT64):
        number = float(value)  # type: ignore[arg-type]
        if not 0.0 <= number < math.inf:  # also refuses NaN
            raise InvalidMessage("protocol", f"{path}: {value} is not a finite number >= 0")
        if field.name.endswith("_ratio") and number > 1.0:
            raise InvalidMessage("protocol", f"{path}: ratio {value} above 1")


def _check_enum_value(field: FieldDescriptor, value: int, path: str) -> None:
    enum = field.enum_type
    if enum is None or value not in enum.values_by_number or value == 0:
        raise InvalidMessage("bad_enum", f"{path}: {value} is not a known value")


def _validate_rtt(o: pb.Observation, path: str) -> None:
    rtt = o.rtt
    samples = rtt.samples_ns
    if len(samples) > o.packets_received:
        raise InvalidMessage(
            "bad_rtt",
            f"{path}.rtt.samples_ns: {len(samples)} samples for {o.packets_received} received",
        )
    if any(s < 0 for s in samples) or rtt.min_ns < 0 or rtt.stddev_ns < 0:
        raise InvalidMessage("bad_rtt", f"{path}.rtt: negative value")
    if o.HasField("rtt") and not rtt.min_ns <= rtt.mean_ns <= rtt.max_ns:
        raise InvalidMessage("bad_rtt", f"{path}.rtt: min <= mean <= max does not hold")
