from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHECK_KIND_UNSPECIFIED: _ClassVar[CheckKind]
    CHECK_KIND_ICMP: _ClassVar[CheckKind]
    CHECK_KIND_TCP: _ClassVar[CheckKind]
    CHECK_KIND_HTTP: _ClassVar[CheckKind]
    CHECK_KIND_SMTP: _ClassVar[CheckKind]
    CHECK_KIND_POP3: _ClassVar[CheckKind]
    CHECK_KIND_DNS: _ClassVar[CheckKind]
    CHECK_KIND_EGRESS_LOSS: _ClassVar[CheckKind]
    CHECK_KIND_HOST: _ClassVar[CheckKind]
    CHECK_KIND_PATH: _ClassVar[CheckKind]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_OK: _ClassVar[Outcome]
    OUTCOME_TIMEOUT: _ClassVar[Outcome]
    OUTCOME_REFUSED: _ClassVar[Outcome]
    OUTCOME_UNREACHABLE: _ClassVar[Outcome]
    OUTCOME_FAILED: _ClassVar[Outcome]
    OUTCOME_ERROR: _ClassVar[Outcome]

class ErrorClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CLASS_NONE: _ClassVar[ErrorClass]
    ERROR_CLASS_DNS_FAILURE: _ClassVar[ErrorClass]
    ERROR_CLASS_CONNECT_REFUSED: _ClassVar[ErrorClass]
    ERROR_CLASS_CONNECT_TIMEOUT: _ClassVar[ErrorClass]
    ERROR_CLASS_HOST_UNREACHABLE: _ClassVar[ErrorClass]
    ERROR_CLASS_NET_UNREACHABLE: _ClassVar[ErrorClass]
    ERROR_CLASS_TLS_ERROR: _ClassVar[ErrorClass]
    ERROR_CLASS_PROTOCOL_ERROR: _ClassVar[ErrorClass]
    ERROR_CLASS_BAD_STATUS: _ClassVar[ErrorClass]
    ERROR_CLASS_READ_TIMEOUT: _ClassVar[ErrorClass]
    ERROR_CLASS_ANSWER_MISMATCH: _ClassVar[ErrorClass]
    ERROR_CLASS_ECHO_TIMEOUT: _ClassVar[ErrorClass]
    ERROR_CLASS_ADMIN_PROHIBITED: _ClassVar[ErrorClass]
    ERROR_CLASS_LOCAL_ERROR: _ClassVar[ErrorClass]
    ERROR_CLASS_RESOURCE_EXHAUSTED: _ClassVar[ErrorClass]
    ERROR_CLASS_PROCESS_MISSING: _ClassVar[ErrorClass]
    ERROR_CLASS_REBOOTED: _ClassVar[ErrorClass]
CHECK_KIND_UNSPECIFIED: CheckKind
CHECK_KIND_ICMP: CheckKind
CHECK_KIND_TCP: CheckKind
CHECK_KIND_HTTP: CheckKind
CHECK_KIND_SMTP: CheckKind
CHECK_KIND_POP3: CheckKind
CHECK_KIND_DNS: CheckKind
CHECK_KIND_EGRESS_LOSS: CheckKind
CHECK_KIND_HOST: CheckKind
CHECK_KIND_PATH: CheckKind
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_OK: Outcome
OUTCOME_TIMEOUT: Outcome
OUTCOME_REFUSED: Outcome
OUTCOME_UNREACHABLE: Outcome
OUTCOME_FAILED: Outcome
OUTCOME_ERROR: Outcome
ERROR_CLASS_NONE: ErrorClass
ERROR_CLASS_DNS_FAILURE: ErrorClass
ERROR_CLASS_CONNECT_REFUSED: ErrorClass
ERROR_CLASS_CONNECT_TIMEOUT: ErrorClass
ERROR_CLASS_HOST_UNREACHABLE: ErrorClass
ERROR_CLASS_NET_UNREACHABLE: ErrorClass
ERROR_CLASS_TLS_ERROR: ErrorClass
ERROR_CLASS_PROTOCOL_ERROR: ErrorClass
ERROR_CLASS_BAD_STATUS: ErrorClass
ERROR_CLASS_READ_TIMEOUT: ErrorClass
ERROR_CLASS_ANSWER_MISMATCH: ErrorClass
ERROR_CLASS_ECHO_TIMEOUT: ErrorClass
ERROR_CLASS_ADMIN_PROHIBITED: ErrorClass
ERROR_CLASS_LOCAL_ERROR: ErrorClass
ERROR_CLASS_RESOURCE_EXHAUSTED: ErrorClass
ERROR_CLASS_PROCESS_MISSING: ErrorClass
ERROR_CLASS_REBOOTED: ErrorClass

class RttStats(_message.Message):
    __slots__ = ("min_ns", "mean_ns", "max_ns", "stddev_ns", "samples_ns")
    MIN_NS_FIELD_NUMBER: _ClassVar[int]
    MEAN_NS_FIELD_NUMBER: _ClassVar[int]
    MAX_NS_FIELD_NUMBER: _ClassVar[int]
    STDDEV_NS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_NS_FIELD_NUMBER: _ClassVar[int]
    min_ns: int
    mean_ns: int
    max_ns: int
    stddev_ns: int
    samples_ns: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, min_ns: _Optional[int] = ..., mean_ns: _Optional[int] = ..., max_ns: _Optional[int] = ..., stddev_ns: _Optional[int] = ..., samples_ns: _Optional[_Iterable[int]] = ...) -> None: ...

class Observation(_message.Message):
    __slots__ = ("check_id", "kind", "target", "start_unix_ns", "duration_ns", "outcome", "error_class", "error_detail", "packets_sent", "packets_received", "rtt", "http", "mail", "dns", "host", "egress_loss", "path")
    CHECK_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    START_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    DURATION_NS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_CLASS_FIELD_NUMBER: _ClassVar[int]
    ERROR_DETAIL_FIELD_NUMBER: _ClassVar[int]
    PACKETS_SENT_FIELD_NUMBER: _ClassVar[int]
    PACKETS_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    RTT_FIELD_NUMBER: _ClassVar[int]
    HTTP_FIELD_NUMBER: _ClassVar[int]
    MAIL_FIELD_NUMBER: _ClassVar[int]
    DNS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    EGRESS_LOSS_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    check_id: str
    kind: CheckKind
    target: str
    start_unix_ns: int
    duration_ns: int
    outcome: Outcome
    error_class: ErrorClass
    error_detail: str
    packets_sent: int
    packets_received: int
    rtt: RttStats
    http: HttpDetail
    mail: MailDetail
    dns: DnsDetail
    host: HostDetail
    egress_loss: EgressLossDetail
    path: PathDetail
    def __init__(self, check_id: _Optional[str] = ..., kind: _Optional[_Union[CheckKind, str]] = ..., target: _Optional[str] = ..., start_unix_ns: _Optional[int] = ..., duration_ns: _Optional[int] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., error_class: _Optional[_Union[ErrorClass, str]] = ..., error_detail: _Optional[str] = ..., packets_sent: _Optional[int] = ..., packets_received: _Optional[int] = ..., rtt: _Optional[_Union[RttStats, _Mapping]] = ..., http: _Optional[_Union[HttpDetail, _Mapping]] = ..., mail: _Optional[_Union[MailDetail, _Mapping]] = ..., dns: _Optional[_Union[DnsDetail, _Mapping]] = ..., host: _Optional[_Union[HostDetail, _Mapping]] = ..., egress_loss: _Optional[_Union[EgressLossDetail, _Mapping]] = ..., path: _Optional[_Union[PathDetail, _Mapping]] = ...) -> None: ...

class PathDetail(_message.Message):
    __slots__ = ("hops", "reached", "changed", "previous", "border_ttl", "egress_ttl", "path_loss_ttl")
    HOPS_FIELD_NUMBER: _ClassVar[int]
    REACHED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    BORDER_TTL_FIELD_NUMBER: _ClassVar[int]
    EGRESS_TTL_FIELD_NUMBER: _ClassVar[int]
    PATH_LOSS_TTL_FIELD_NUMBER: _ClassVar[int]
    hops: _containers.RepeatedCompositeFieldContainer[PathHop]
    reached: bool
    changed: bool
    previous: _containers.RepeatedScalarFieldContainer[str]
    border_ttl: int
    egress_ttl: int
    path_loss_ttl: int
    def __init__(self, hops: _Optional[_Iterable[_Union[PathHop, _Mapping]]] = ..., reached: _Optional[bool] = ..., changed: _Optional[bool] = ..., previous: _Optional[_Iterable[str]] = ..., border_ttl: _Optional[int] = ..., egress_ttl: _Optional[int] = ..., path_loss_ttl: _Optional[int] = ...) -> None: ...

class PathHop(_message.Message):
    __slots__ = ("ttl", "address", "sent", "received", "loss_lower_ratio", "loss_upper_ratio", "rate_limited")
    TTL_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    LOSS_LOWER_RATIO_FIELD_NUMBER: _ClassVar[int]
    LOSS_UPPER_RATIO_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITED_FIELD_NUMBER: _ClassVar[int]
    ttl: int
    address: str
    sent: int
    received: int
    loss_lower_ratio: float
    loss_upper_ratio: float
    rate_limited: bool
    def __init__(self, ttl: _Optional[int] = ..., address: _Optional[str] = ..., sent: _Optional[int] = ..., received: _Optional[int] = ..., loss_lower_ratio: _Optional[float] = ..., loss_upper_ratio: _Optional[float] = ..., rate_limited: _Optional[bool] = ...) -> None: ...

class EgressLossDetail(_message.Message):
    __slots__ = ("verdict", "threshold_ratio", "loss_lower_ratio", "loss_upper_ratio", "border", "beyond", "next_window_packets")
    class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VERDICT_UNSPECIFIED: _ClassVar[EgressLossDetail.Verdict]
        VERDICT_CLEAR: _ClassVar[EgressLossDetail.Verdict]
        VERDICT_UNDECIDED: _ClassVar[EgressLossDetail.Verdict]
        VERDICT_EXCESS: _ClassVar[EgressLossDetail.Verdict]
        VERDICT_RATE_LIMITED: _ClassVar[EgressLossDetail.Verdict]
    VERDICT_UNSPECIFIED: EgressLossDetail.Verdict
    VERDICT_CLEAR: EgressLossDetail.Verdict
    VERDICT_UNDECIDED: EgressLossDetail.Verdict
    VERDICT_EXCESS: EgressLossDetail.Verdict
    VERDICT_RATE_LIMITED: EgressLossDetail.Verdict
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_RATIO_FIELD_NUMBER: _ClassVar[int]
    LOSS_LOWER_RATIO_FIELD_NUMBER: _ClassVar[int]
    LOSS_UPPER_RATIO_FIELD_NUMBER: _ClassVar[int]
    BORDER_FIELD_NUMBER: _ClassVar[int]
    BEYOND_FIELD_NUMBER: _ClassVar[int]
    NEXT_WINDOW_PACKETS_FIELD_NUMBER: _ClassVar[int]
    verdict: EgressLossDetail.Verdict
    threshold_ratio: float
    loss_lower_ratio: float
    loss_upper_ratio: float
    border: HopLoss
    beyond: HopLoss
    next_window_packets: int
    def __init__(self, verdict: _Optional[_Union[EgressLossDetail.Verdict, str]] = ..., threshold_ratio: _Optional[float] = ..., loss_lower_ratio: _Optional[float] = ..., loss_upper_ratio: _Optional[float] = ..., border: _Optional[_Union[HopLoss, _Mapping]] = ..., beyond: _Optional[_Union[HopLoss, _Mapping]] = ..., next_window_packets: _Optional[int] = ...) -> None: ...

class HopLoss(_message.Message):
    __slots__ = ("address", "sent", "received", "loss_lower_ratio", "loss_upper_ratio")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    LOSS_LOWER_RATIO_FIELD_NUMBER: _ClassVar[int]
    LOSS_UPPER_RATIO_FIELD_NUMBER: _ClassVar[int]
    address: str
    sent: int
    received: int
    loss_lower_ratio: float
    loss_upper_ratio: float
    def __init__(self, address: _Optional[str] = ..., sent: _Optional[int] = ..., received: _Optional[int] = ..., loss_lower_ratio: _Optional[float] = ..., loss_upper_ratio: _Optional[float] = ...) -> None: ...

class TlsDetail(_message.Message):
    __slots__ = ("handshake_ns", "protocol", "cert_not_after_unix", "cert_subject", "verified")
    HANDSHAKE_NS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    CERT_NOT_AFTER_UNIX_FIELD_NUMBER: _ClassVar[int]
    CERT_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    handshake_ns: int
    protocol: str
    cert_not_after_unix: int
    cert_subject: str
    verified: bool
    def __init__(self, handshake_ns: _Optional[int] = ..., protocol: _Optional[str] = ..., cert_not_after_unix: _Optional[int] = ..., cert_subject: _Optional[str] = ..., verified: _Optional[bool] = ...) -> None: ...

class HttpDetail(_message.Message):
    __slots__ = ("status_code", "time_to_first_byte_ns", "tls", "http_version", "redirects_followed")
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_BYTE_NS_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    HTTP_VERSION_FIELD_NUMBER: _ClassVar[int]
    REDIRECTS_FOLLOWED_FIELD_NUMBER: _ClassVar[int]
    status_code: int
    time_to_first_byte_ns: int
    tls: TlsDetail
    http_version: str
    redirects_followed: int
    def __init__(self, status_code: _Optional[int] = ..., time_to_first_byte_ns: _Optional[int] = ..., tls: _Optional[_Union[TlsDetail, _Mapping]] = ..., http_version: _Optional[str] = ..., redirects_followed: _Optional[int] = ...) -> None: ...

class MailDetail(_message.Message):
    __slots__ = ("banner", "reply_code", "tls")
    BANNER_FIELD_NUMBER: _ClassVar[int]
    REPLY_CODE_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    banner: str
    reply_code: int
    tls: TlsDetail
    def __init__(self, banner: _Optional[str] = ..., reply_code: _Optional[int] = ..., tls: _Optional[_Union[TlsDetail, _Mapping]] = ...) -> None: ...

class DnsDetail(_message.Message):
    __slots__ = ("rcode", "answers", "retried_over_tcp")
    RCODE_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    RETRIED_OVER_TCP_FIELD_NUMBER: _ClassVar[int]
    rcode: str
    answers: _containers.RepeatedScalarFieldContainer[str]
    retried_over_tcp: bool
    def __init__(self, rcode: _Optional[str] = ..., answers: _Optional[_Iterable[str]] = ..., retried_over_tcp: _Optional[bool] = ...) -> None: ...

class HostDetail(_message.Message):
    __slots__ = ("cpu_ratio", "memory_used_ratio", "swap_used_ratio", "load1", "load5", "load15", "boot_time_unix", "disks", "interfaces", "processes", "agent_rss_bytes", "agent_cpu_seconds", "findings")
    CPU_RATIO_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_RATIO_FIELD_NUMBER: _ClassVar[int]
    SWAP_USED_RATIO_FIELD_NUMBER: _ClassVar[int]
    LOAD1_FIELD_NUMBER: _ClassVar[int]
    LOAD5_FIELD_NUMBER: _ClassVar[int]
    LOAD15_FIELD_NUMBER: _ClassVar[int]
    BOOT_TIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    DISKS_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    AGENT_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    AGENT_CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    cpu_ratio: float
    memory_used_ratio: float
    swap_used_ratio: float
    load1: float
    load5: float
    load15: float
    boot_time_unix: int
    disks: _containers.RepeatedCompositeFieldContainer[DiskUsage]
    interfaces: _containers.RepeatedCompositeFieldContainer[InterfaceRates]
    processes: _containers.RepeatedCompositeFieldContainer[ProcessState]
    agent_rss_bytes: int
    agent_cpu_seconds: float
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    def __init__(self, cpu_ratio: _Optional[float] = ..., memory_used_ratio: _Optional[float] = ..., swap_used_ratio: _Optional[float] = ..., load1: _Optional[float] = ..., load5: _Optional[float] = ..., load15: _Optional[float] = ..., boot_time_unix: _Optional[int] = ..., disks: _Optional[_Iterable[_Union[DiskUsage, _Mapping]]] = ..., interfaces: _Optional[_Iterable[_Union[InterfaceRates, _Mapping]]] = ..., processes: _Optional[_Iterable[_Union[ProcessState, _Mapping]]] = ..., agent_rss_bytes: _Optional[int] = ..., agent_cpu_seconds: _Optional[float] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ...) -> None: ...

class DiskUsage(_message.Message):
    __slots__ = ("mount", "used_ratio", "inodes_used_ratio", "total_bytes", "error")
    MOUNT_FIELD_NUMBER: _ClassVar[int]
    USED_RATIO_FIELD_NUMBER: _ClassVar[int]
    INODES_USED_RATIO_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    mount: str
    used_ratio: float
    inodes_used_ratio: float
    total_bytes: int
    error: str
    def __init__(self, mount: _Optional[str] = ..., used_ratio: _Optional[float] = ..., inodes_used_ratio: _Optional[float] = ..., total_bytes: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class InterfaceRates(_message.Message):
    __slots__ = ("name", "rx_packets_per_second", "tx_packets_per_second", "rx_bytes_per_second", "tx_bytes_per_second", "rx_errors", "tx_errors", "rx_dropped", "tx_dropped")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RX_PACKETS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    TX_PACKETS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    RX_BYTES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    TX_BYTES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    RX_ERRORS_FIELD_NUMBER: _ClassVar[int]
    TX_ERRORS_FIELD_NUMBER: _ClassVar[int]
    RX_DROPPED_FIELD_NUMBER: _ClassVar[int]
    TX_DROPPED_FIELD_NUMBER: _ClassVar[int]
    name: str
    rx_packets_per_second: float
    tx_packets_per_second: float
    rx_bytes_per_second: float
    tx_bytes_per_second: float
    rx_errors: int
    tx_errors: int
    rx_dropped: int
    tx_dropped: int
    def __init__(self, name: _Optional[str] = ..., rx_packets_per_second: _Optional[float] = ..., tx_packets_per_second: _Optional[float] = ..., rx_bytes_per_second: _Optional[float] = ..., tx_bytes_per_second: _Optional[float] = ..., rx_errors: _Optional[int] = ..., tx_errors: _Optional[int] = ..., rx_dropped: _Optional[int] = ..., tx_dropped: _Optional[int] = ...) -> None: ...

class ProcessState(_message.Message):
    __slots__ = ("name", "running")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    name: str
    running: int
    def __init__(self, name: _Optional[str] = ..., running: _Optional[int] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("kind", "subject", "value", "threshold")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Finding.Kind]
        KIND_REBOOTED: _ClassVar[Finding.Kind]
        KIND_DISK_FULL: _ClassVar[Finding.Kind]
        KIND_INODES_FULL: _ClassVar[Finding.Kind]
        KIND_MEMORY_FULL: _ClassVar[Finding.Kind]
        KIND_PROCESS_MISSING: _ClassVar[Finding.Kind]
    KIND_UNSPECIFIED: Finding.Kind
    KIND_REBOOTED: Finding.Kind
    KIND_DISK_FULL: Finding.Kind
    KIND_INODES_FULL: Finding.Kind
    KIND_MEMORY_FULL: Finding.Kind
    KIND_PROCESS_MISSING: Finding.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    kind: Finding.Kind
    subject: str
    value: float
    threshold: float
    def __init__(self, kind: _Optional[_Union[Finding.Kind, str]] = ..., subject: _Optional[str] = ..., value: _Optional[float] = ..., threshold: _Optional[float] = ...) -> None: ...
