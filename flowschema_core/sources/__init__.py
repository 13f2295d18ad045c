"""Sources: where records come from (see :mod:`flowschema_core.sources.base`)."""

from .base import ParseFailure, RecordSource, Source
from .csv import CSVSource
from .json import JSONSource
from .jsonl import JSONLSource
from .parquet import ParquetSource
from .sql import SQLSource

__all__ = ["CSVSource", "JSONLSource", "JSONSource", "ParquetSource", "ParseFailure", "RecordSource", "SQLSource", "Source"]
