"""FlowSchema: a memory-aware micro-ETL engine.

Read records from messy sources, validate each with a Pydantic v2 model in parallel
workers, write valid rows to a sink and invalid ones to a dead-letter queue with the
reason, and never let the data in transit outgrow a byte budget.

FlowSchema logs worker restarts, retries, chunk splits and checkpoints to the
``"flowschema"`` logger, which is silent until you configure logging
(``logging.basicConfig(level=logging.INFO)``).
"""

import logging as _logging

from .dlq import DLQ_FIELDS
from .dlq_summary import DLQSummary, inspect_dlq
from .errors import (
    AccountingError,
    CheckpointError,
    CodecError,
    ConfigError,
    ExecutionError,
    FlowSchemaError,
    InvalidRecordsError,
    MissingDependencyError,
    SinkError,
    SourceConnectionError,
    SourceError,
    WorkerCrashedError,
    WorkerError,
    WorkerPoolError,
)
from .executors import Executor, InlineExecutor, MultiprocessingExecutor
from .hooks import Hook, after_validate, before_validate
from .infer import infer_model, infer_model_source
from .ledger import ByteLedger
from .pipeline import Pipeline
from .progress import ProgressSnapshot
from .report import RunReport
from .sinks import CSVSink, JSONLSink, ParquetSink, Sink, SQLSink
from .sources import (
    CSVSource,
    Cursor,
    DLQSource,
    ExcelSource,
    HTTPSource,
    JSONLSource,
    JSONSource,
    NextLink,
    Offset,
    PageNumber,
    ParquetSource,
    ParseFailure,
    RecordSource,
    Source,
    SQLSource,
)
from .units import parse_size

__version__ = "0.1.0"

_logging.getLogger("flowschema").addHandler(_logging.NullHandler())

__all__ = [
    "DLQ_FIELDS",
    "AccountingError",
    "ByteLedger",
    "CSVSink",
    "CSVSource",
    "CheckpointError",
    "CodecError",
    "ConfigError",
    "Cursor",
    "DLQSource",
    "DLQSummary",
    "ExecutionError",
    "Executor",
    "ExcelSource",
    "FlowSchemaError",
    "HTTPSource",
    "Hook",
    "InlineExecutor",
    "InvalidRecordsError",
    "JSONLSink",
    "JSONLSource",
    "JSONSource",
    "MissingDependencyError",
    "MultiprocessingExecutor",
    "NextLink",
    "Offset",
    "PageNumber",
    "ParquetSink",
    "ParquetSource",
    "ParseFailure",
    "Pipeline",
    "ProgressSnapshot",
    "RecordSource",
    "RunReport",
    "SQLSink",
    "SQLSource",
    "Sink",
    "SinkError",
    "Source",
    "SourceConnectionError",
    "SourceError",
    "WorkerCrashedError",
    "WorkerError",
    "WorkerPoolError",
    "__version__",
    "after_validate",
    "before_validate",
    "infer_model",
    "infer_model_source",
    "inspect_dlq",
    "parse_size",
]
