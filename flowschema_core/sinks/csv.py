"""CSV output with a header row; nested values are written as JSON text."""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Any

from pydantic import BaseModel

from ..errors import SinkError
from .base import AtomicFile, Sink


class CSVSink(Sink):
    """Write rows to a CSV file (UTF-8; characters UTF-8 cannot hold become ``\\x`` escapes)."""

    output_form = "csv"

    def __init__(self, path: str | os.PathLike[str], *, delimiter: str = ",") -> None:
        self.path = os.fspath(path)
        self.name = self.path
        self.delimiter = delimiter
        self._file: AtomicFile | None = None
        self._fields: list[str] = []

    def open(self, fields: list[str], model: type[BaseModel] | None = None) -> None:
        self._fields = list(fields)
        self._file = AtomicFile(self.path)
        self._write_bytes(self._encode([self._fields]))

    def open_resumable(self, fields: list[str], model: type[BaseModel] | None, key: str, state: dict[str, Any] | None) -> None:
        self._fields = list(fields)
        self._file = AtomicFile(self.path, key=key, resume_length=state["length"] if state else None)
        if state is None:
            self._write_bytes(self._encode([self._fields]))

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

    def _write_bytes(self, data: bytes) -> None:
        if self._file is None:
            raise SinkError(f"{self.path}: write before open()")
        try:
            self._file.file.write(data)
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def suspend(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def finish_commit(self, key: str) -> None:
        AtomicFile.finish(self.path, key)

    def checkpoint(self) -> dict[str, Any]:
        if self._file is None:
            raise SinkError(f"{self.path}: checkpoint before open()")
        return {"length": self._file.sync()}

    def commit(self) -> None:
        if self._file is not None:
            self._file.commit()
            self._file = None

    def abort(self) -> None:
        if self._file is not None:
            self._file.abort()
            self._file = None


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return "" if value is None else value
