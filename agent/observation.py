"""The agent's record of one round of one check, before it goes on the wire."""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.message import Message

from agent.stats import RttSummary
from slawatch.v1 import observation_pb2 as pb

# Outcome and error class values are the wire enums themselves (pb.Outcome,
# pb.ErrorClass): one taxonomy, defined once in proto/slawatch/v1/observation.proto.

_DETAIL_FIELD: dict[type[Message], str] = {
    pb.HttpDetail: "http",
    pb.MailDetail: "mail",
    pb.DnsDetail: "dns",
    pb.HostDetail: "host",
    pb.EgressLossDetail: "egress_loss",
    pb.PathDetail: "path",
}


@dataclass(slots=True)
class Observation:
    check_id: str
    kind: pb.CheckKind
    target: str
    start_unix_ns: int
    duration_ns: int
    outcome: pb.Outcome
    error_class: pb.ErrorClass = pb.ERROR_CLASS_NONE
    error_detail: str = ""
    packets_sent: int = 0
    packets_received: int = 0
    rtt_samples_ns: list[int] = field(default_factory=list)
    # Typed per-kind detail: pb.HttpDetail, pb.MailDetail, pb.DnsDetail or pb.HostDetail.
    detail: Message | None = None

    @property
    def rtt(self) -> RttSummary | None:
        return RttSummary.of(self.rtt_samples_ns)

    def to_wire(self, message: pb.Observation | None = None) -> pb.Observation:
        """The wire message; written into ``message`` (e.g. a batch's new entry,
        which saves a copy) when given."""
        if message is None:
            message = pb.Observation()
        message.check_id = self.check_id
        message.kind = self.kind
        message.target = self.target
        message.start_unix_ns = self.start_unix_ns
        message.duration_ns = self.duration_ns
        message.outcome = self.outcome
        message.error_class = self.error_class
        message.error_detail = self.error_detail
        message.packets_sent = self.packets_sent
        message.packets_received = self.packets_received
        summary = self.rtt
        if summary is not None:
            message.rtt.min_ns = summary.min_ns
            message.rtt.mean_ns = summary.mean_ns
            message.rtt.max_ns = summary.max_ns
            message.rtt.stddev_ns = summary.stddev_ns
            message.rtt.samples_ns.extend(self.rtt_samples_ns)
        if self.detail is not None:
            getattr(message, _DETAIL_FIELD[type(self.detail)]).CopyFrom(self.detail)
        return message
