from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OutputFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_FORMAT_UNSPECIFIED: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_FLOAT32: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_UINT8: _ClassVar[OutputFormat]
    OUTPUT_FORMAT_PNG: _ClassVar[OutputFormat]

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    PRIORITY_INTERACTIVE: _ClassVar[Priority]
    PRIORITY_NORMAL: _ClassVar[Priority]
    PRIORITY_BULK: _ClassVar[Priority]
OUTPUT_FORMAT_UNSPECIFIED: OutputFormat
OUTPUT_FORMAT_FLOAT32: OutputFormat
OUTPUT_FORMAT_UINT8: OutputFormat
OUTPUT_FORMAT_PNG: OutputFormat
PRIORITY_UNSPECIFIED: Priority
PRIORITY_INTERACTIVE: Priority
PRIORITY_NORMAL: Priority
PRIORITY_BULK: Priority

class SampleId(_message.Message):
    __slots__ = ("seed", "index")
    SEED_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    seed: int
    index: int
    def __init__(self, seed: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class SampleRequest(_message.Message):
    __slots__ = ("model", "version", "label", "count", "seed", "first_index", "seeds", "labels", "format", "best_of", "priority")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    FIRST_INDEX_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    BEST_OF_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    label: str
    count: int
    seed: int
    first_index: int
    seeds: _containers.RepeatedScalarFieldContainer[int]
    labels: _containers.RepeatedScalarFieldContainer[int]
    format: OutputFormat
    best_of: int
    priority: Priority
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., label: _Optional[str] = ..., count: _Optional[int] = ..., seed: _Optional[int] = ..., first_index: _Optional[int] = ..., seeds: _Optional[_Iterable[int]] = ..., labels: _Optional[_Iterable[int]] = ..., format: _Optional[_Union[OutputFormat, str]] = ..., best_of: _Optional[int] = ..., priority: _Optional[_Union[Priority, str]] = ...) -> None: ...

class SampleResponse(_message.Message):
    __slots__ = ("model", "model_version", "format", "shape", "data", "images", "ids", "labels", "scores", "queue_us", "compute_us")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    QUEUE_US_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_US_FIELD_NUMBER: _ClassVar[int]
    model: str
    model_version: int
    format: OutputFormat
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    images: _containers.RepeatedScalarFieldContainer[bytes]
    ids: _containers.RepeatedCompositeFieldContainer[SampleId]
    labels: _containers.RepeatedScalarFieldContainer[int]
    scores: _containers.RepeatedScalarFieldContainer[float]
    queue_us: int
    compute_us: int
    def __init__(self, model: _Optional[str] = ..., model_version: _Optional[int] = ..., format: _Optional[_Union[OutputFormat, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ..., images: _Optional[_Iterable[bytes]] = ..., ids: _Optional[_Iterable[_Union[SampleId, _Mapping]]] = ..., labels: _Optional[_Iterable[int]] = ..., scores: _Optional[_Iterable[float]] = ..., queue_us: _Optional[int] = ..., compute_us: _Optional[int] = ...) -> None: ...

class SampleStreamResponse(_message.Message):
    __slots__ = ("offset", "chunk", "completed", "total")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    offset: int
    chunk: SampleResponse
    completed: int
    total: int
    def __init__(self, offset: _Optional[int] = ..., chunk: _Optional[_Union[SampleResponse, _Mapping]] = ..., completed: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelSummary]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelSummary, _Mapping]]] = ...) -> None: ...

class ModelSummary(_message.Message):
    __slots__ = ("name", "versions", "default_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    versions: _containers.RepeatedCompositeFieldContainer[VersionStatus]
    default_version: int
    def __init__(self, name: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[VersionStatus, _Mapping]]] = ..., default_version: _Optional[int] = ...) -> None: ...

class VersionStatus(_message.Message):
    __slots__ = ("version", "state", "reason", "labels")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    version: int
    state: str
    reason: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[int] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ...) -> None: ...

class ModelInfoRequest(_message.Message):
    __slots__ = ("model", "version", "label")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    label: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., label: _Optional[str] = ...) -> None: ...

class ModelInfoResponse(_message.Message):
    __slots__ = ("model", "version", "sample_shape", "num_classes", "kind", "sigma_init", "nfe", "max_batch_size", "max_samples_per_request", "supports_best_of", "labels", "provenance")
    class ProvenanceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIGMA_INIT_FIELD_NUMBER: _ClassVar[int]
    NFE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_SAMPLES_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_BEST_OF_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    sample_shape: _containers.RepeatedScalarFieldContainer[int]
    num_classes: int
    kind: str
    sigma_init: float
    nfe: int
    max_batch_size: int
    max_samples_per_request: int
    supports_best_of: bool
    labels: _containers.RepeatedScalarFieldContainer[str]
    provenance: _containers.ScalarMap[str, str]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., sample_shape: _Optional[_Iterable[int]] = ..., num_classes: _Optional[int] = ..., kind: _Optional[str] = ..., sigma_init: _Optional[float] = ..., nfe: _Optional[int] = ..., max_batch_size: _Optional[int] = ..., max_samples_per_request: _Optional[int] = ..., supports_best_of: _Optional[bool] = ..., labels: _Optional[_Iterable[str]] = ..., provenance: _Optional[_Mapping[str, str]] = ...) -> None: ...
