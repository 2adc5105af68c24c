from slawatch.v1 import observation_pb2 as _observation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentMessage(_message.Message):
    __slots__ = ("hello", "batch", "heartbeat", "config_status")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_STATUS_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    batch: ObservationBatch
    heartbeat: Heartbeat
    config_status: ConfigStatus
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., batch: _Optional[_Union[ObservationBatch, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., config_status: _Optional[_Union[ConfigStatus, _Mapping]] = ...) -> None: ...

class CollectorMessage(_message.Message):
    __slots__ = ("hello_ack", "batch_ack", "config_push")
    HELLO_ACK_FIELD_NUMBER: _ClassVar[int]
    BATCH_ACK_FIELD_NUMBER: _ClassVar[int]
    CONFIG_PUSH_FIELD_NUMBER: _ClassVar[int]
    hello_ack: HelloAck
    batch_ack: BatchAck
    config_push: ConfigPush
    def __init__(self, hello_ack: _Optional[_Union[HelloAck, _Mapping]] = ..., batch_ack: _Optional[_Union[BatchAck, _Mapping]] = ..., config_push: _Optional[_Union[ConfigPush, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("agent_id", "software_version", "labels", "boot_id", "sequence_epoch", "started_unix_ns", "hostname", "config_version")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_EPOCH_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    software_version: str
    labels: _containers.ScalarMap[str, str]
    boot_id: str
    sequence_epoch: int
    started_unix_ns: int
    hostname: str
    config_version: str
    def __init__(self, agent_id: _Optional[str] = ..., software_version: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., boot_id: _Optional[str] = ..., sequence_epoch: _Optional[int] = ..., started_unix_ns: _Optional[int] = ..., hostname: _Optional[str] = ..., config_version: _Optional[str] = ...) -> None: ...

class HelloAck(_message.Message):
    __slots__ = ("collector_version", "last_stored_sequence")
    COLLECTOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_STORED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    collector_version: str
    last_stored_sequence: int
    def __init__(self, collector_version: _Optional[str] = ..., last_stored_sequence: _Optional[int] = ...) -> None: ...

class ObservationBatch(_message.Message):
    __slots__ = ("sequence", "observations", "replayed", "window_start_unix_ns", "window_end_unix_ns", "spool_drops")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    SPOOL_DROPS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    observations: _containers.RepeatedCompositeFieldContainer[_observation_pb2.Observation]
    replayed: bool
    window_start_unix_ns: int
    window_end_unix_ns: int
    spool_drops: _containers.RepeatedCompositeFieldContainer[SpoolDrop]
    def __init__(self, sequence: _Optional[int] = ..., observations: _Optional[_Iterable[_Union[_observation_pb2.Observation, _Mapping]]] = ..., replayed: _Optional[bool] = ..., window_start_unix_ns: _Optional[int] = ..., window_end_unix_ns: _Optional[int] = ..., spool_drops: _Optional[_Iterable[_Union[SpoolDrop, _Mapping]]] = ...) -> None: ...

class SpoolDrop(_message.Message):
    __slots__ = ("reason", "dropped_unix_ns", "first_sequence", "last_sequence", "batches", "observations", "first_start_unix_ns", "last_start_unix_ns", "window_start_unix_ns", "window_end_unix_ns")
    class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REASON_UNSPECIFIED: _ClassVar[SpoolDrop.Reason]
        REASON_SIZE: _ClassVar[SpoolDrop.Reason]
        REASON_AGE: _ClassVar[SpoolDrop.Reason]
        REASON_REJECTED: _ClassVar[SpoolDrop.Reason]
    REASON_UNSPECIFIED: SpoolDrop.Reason
    REASON_SIZE: SpoolDrop.Reason
    REASON_AGE: SpoolDrop.Reason
    REASON_REJECTED: SpoolDrop.Reason
    REASON_FIELD_NUMBER: _ClassVar[int]
    DROPPED_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    FIRST_START_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    LAST_START_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    reason: SpoolDrop.Reason
    dropped_unix_ns: int
    first_sequence: int
    last_sequence: int
    batches: int
    observations: int
    first_start_unix_ns: int
    last_start_unix_ns: int
    window_start_unix_ns: int
    window_end_unix_ns: int
    def __init__(self, reason: _Optional[_Union[SpoolDrop.Reason, str]] = ..., dropped_unix_ns: _Optional[int] = ..., first_sequence: _Optional[int] = ..., last_sequence: _Optional[int] = ..., batches: _Optional[int] = ..., observations: _Optional[int] = ..., first_start_unix_ns: _Optional[int] = ..., last_start_unix_ns: _Optional[int] = ..., window_start_unix_ns: _Optional[int] = ..., window_end_unix_ns: _Optional[int] = ...) -> None: ...

class BatchAck(_message.Message):
    __slots__ = ("sequence", "status", "reason")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[BatchAck.Status]
        STATUS_ACCEPTED: _ClassVar[BatchAck.Status]
        STATUS_DUPLICATE: _ClassVar[BatchAck.Status]
        STATUS_REJECTED: _ClassVar[BatchAck.Status]
    STATUS_UNSPECIFIED: BatchAck.Status
    STATUS_ACCEPTED: BatchAck.Status
    STATUS_DUPLICATE: BatchAck.Status
    STATUS_REJECTED: BatchAck.Status
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    status: BatchAck.Status
    reason: str
    def __init__(self, sequence: _Optional[int] = ..., status: _Optional[_Union[BatchAck.Status, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class ConfigPush(_message.Message):
    __slots__ = ("version", "checks_yaml")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHECKS_YAML_FIELD_NUMBER: _ClassVar[int]
    version: str
    checks_yaml: str
    def __init__(self, version: _Optional[str] = ..., checks_yaml: _Optional[str] = ...) -> None: ...

class ConfigStatus(_message.Message):
    __slots__ = ("version", "accepted", "reason")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    version: str
    accepted: bool
    reason: str
    def __init__(self, version: _Optional[str] = ..., accepted: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sent_unix_ns", "host")
    SENT_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    sent_unix_ns: int
    host: HostSnapshot
    def __init__(self, sent_unix_ns: _Optional[int] = ..., host: _Optional[_Union[HostSnapshot, _Mapping]] = ...) -> None: ...

class HostSnapshot(_message.Message):
    __slots__ = ("cpu_ratio", "memory_used_ratio", "load1", "boot_time_unix", "agent_rss_bytes", "agent_cpu_seconds", "checks_configured", "rounds_skipped")
    CPU_RATIO_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_RATIO_FIELD_NUMBER: _ClassVar[int]
    LOAD1_FIELD_NUMBER: _ClassVar[int]
    BOOT_TIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    AGENT_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    AGENT_CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CHECKS_CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    cpu_ratio: float
    memory_used_ratio: float
    load1: float
    boot_time_unix: int
    agent_rss_bytes: int
    agent_cpu_seconds: float
    checks_configured: int
    rounds_skipped: int
    def __init__(self, cpu_ratio: _Optional[float] = ..., memory_used_ratio: _Optional[float] = ..., load1: _Optional[float] = ..., boot_time_unix: _Optional[int] = ..., agent_rss_bytes: _Optional[int] = ..., agent_cpu_seconds: _Optional[float] = ..., checks_configured: _Optional[int] = ..., rounds_skipped: _Optional[int] = ...) -> None: ...
