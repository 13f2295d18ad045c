"""Sinks: where valid rows and DLQ records go (see :mod:`flowschema_core.sinks.base`)."""

from .base import AtomicFile, FileSink, RowSink, Sink
from .csv import CSVSink
from .jsonl import JSONLSink
from .parquet import ParquetSink
from .sql import SQLSink

__all__ = ["AtomicFile", "CSVSink", "FileSink", "RowSink", "JSONLSink", "ParquetSink", "SQLSink", "Sink"]
