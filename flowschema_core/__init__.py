"""FlowSchema: a memory-aware micro-ETL engine.

Read records from messy sources, validate each with a Pydantic v2 model in parallel
workers, write valid rows to a sink and invalid ones to a dead-letter queue with the
reason, and never let the data in transit outgrow a byte budget.

FlowSchema logs worker restarts, retries, chunk splits and checkpoints to the
``"flowschema"`` logger, which is silent until you configure logging
(``logging.basicConfig(level=logging.INFO)``).
"""

import importlib as _importlib
import logging as _logging
import typing as _typing

if _typing.TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load on first use
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

# Public name -> the module that defines it. A name is imported on first use (PEP 562), so
# a worker process, which imports only flowschema_core.worker and what it needs, does not
# pay for the sources, sinks, pipeline and inference modules (start-up time and memory in
# every worker). ``import flowschema_core as fs; fs.Pipeline`` works as before.
_EXPORTS: dict[str, str] = {
    "DLQ_FIELDS": ".dlq",
    "DLQSummary": ".dlq_summary",
    "inspect_dlq": ".dlq_summary",
    "AccountingError": ".errors",
    "CheckpointError": ".errors",
    "CodecError": ".errors",
    "ConfigError": ".errors",
    "ExecutionError": ".errors",
    "FlowSchemaError": ".errors",
    "InvalidRecordsError": ".errors",
    "MissingDependencyError": ".errors",
    "SinkError": ".errors",
    "SourceConnectionError": ".errors",
    "SourceError": ".errors",
    "WorkerCrashedError": ".errors",
    "WorkerError": ".errors",
    "WorkerPoolError": ".errors",
    "Executor": ".executors",
    "InlineExecutor": ".executors",
    "MultiprocessingExecutor": ".executors",
    "Hook": ".hooks",
    "after_validate": ".hooks",
    "before_validate": ".hooks",
    "infer_model": ".infer",
    "infer_model_source": ".infer",
    "ByteLedger": ".ledger",
    "Pipeline": ".pipeline",
    "ProgressSnapshot": ".progress",
    "RunReport": ".report",
    "CSVSink": ".sinks",
    "JSONLSink": ".sinks",
    "ParquetSink": ".sinks",
    "SQLSink": ".sinks",
    "Sink": ".sinks",
    "CSVSource": ".sources",
    "Cursor": ".sources",
    "DLQSource": ".sources",
    "ExcelSource": ".sources",
    "HTTPSource": ".sources",
    "JSONLSource": ".sources",
    "JSONSource": ".sources",
    "NextLink": ".sources",
    "Offset": ".sources",
    "PageNumber": ".sources",
    "ParquetSource": ".sources",
    "ParseFailure": ".sources",
    "RecordSource": ".sources",
    "SQLSource": ".sources",
    "Source": ".sources",
    "parse_size": ".units",
}


def __getattr__(name: str) -> _typing.Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


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
