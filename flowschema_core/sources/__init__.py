"""Sources: where records come from (see :mod:`flowschema_core.sources.base`)."""

from .base import ParseFailure, RecordSource, Source
from .csv import CSVSource
from .dlq import DLQSource
from .excel import ExcelSource
from .http import Cursor, HTTPSource, NextLink, Offset, PageNumber
from .json import JSONSource
from .jsonl import JSONLSource
from .parquet import ParquetSource
from .sql import SQLSource

__all__ = [
    "CSVSource", "Cursor", "DLQSource", "ExcelSource", "HTTPSource", "JSONLSource", "JSONSource", "NextLink", "Offset", "PageNumber",
    "ParquetSource", "ParseFailure", "RecordSource", "SQLSource", "Source",
]
