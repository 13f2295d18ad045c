"""CSV output with a header row; nested values are written as JSON text."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from typing import Any

from ..dlq import json_default
from .base import FileSink


class CSVSink(FileSink):
    """Write rows to a CSV file (UTF-8; characters UTF-8 cannot hold become ``\\x`` escapes)."""

    output_form = "csv"

    def __init__(self, path: str | os.PathLike[str], *, delimiter: str = ",", storage_options: Mapping[str, Any] | str | None = None) -> None:
        super().__init__(path, storage_options=storage_options)
        self.delimiter = delimiter
        self._fields: list[str] = []

    def _header(self, fields: list[str]) -> bytes:
        self._fields = list(fields)
        return self._encode([self._fields])

    def _encode(self, rows: list[list[Any]]) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, delimiter=self.delimiter, lineterminator="\n")
        writer.writerows(rows)
        return out.getvalue().encode("utf-8", "backslashreplace")

    def write(self, data: bytes) -> None:
        if self.delimiter != ",":
            # Workers write commas; re-encode for another delimiter (rare, so kept simple).
            data = self._encode(list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""))))
        self._write_bytes(data)

    def write_records(self, records: list[dict[str, Any]]) -> None:
        self._write_bytes(self._encode([[_cell(r.get(f)) for f in self._fields] for r in records]))


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=json_default)
    return "" if value is None else value
