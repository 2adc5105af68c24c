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
CHECK_KIND_UNSPECIFIED: CheckKind
CHECK_KIND_ICMP: CheckKind
CHECK_KIND_TCP: CheckKind
CHECK_KIND_HTTP: CheckKind
CHECK_KIND_SMTP: CheckKind
CHECK_KIND_POP3: CheckKind
CHECK_KIND_DNS: CheckKind
CHECK_KIND_EGRESS_LOSS: CheckKind
CHECK_KIND_HOST: CheckKind
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
    __slots__ = ("check_id", "kind", "target", "start_unix_ns", "duration_ns", "outcome", "error_class", "error_detail", "packets_sent", "packets_received", "rtt")
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
    def __init__(self, check_id: _Optional[str] = ..., kind: _Optional[_Union[CheckKind, str]] = ..., target: _Optional[str] = ..., start_unix_ns: _Optional[int] = ..., duration_ns: _Optional[int] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., error_class: _Optional[_Union[ErrorClass, str]] = ..., error_detail: _Optional[str] = ..., packets_sent: _Optional[int] = ..., packets_received: _Optional[int] = ..., rtt: _Optional[_Union[RttStats, _Mapping]] = ...) -> None: ...
