"""JSON Lines output: the default DLQ, and a sink for valid rows."""

from __future__ import annotations

import json
import os
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from ..errors import SinkError
from .base import AtomicFile, Sink


def dumps_line(record: dict[str, Any]) -> bytes:
    """One JSON line. Readable UTF-8 when possible; ``\\uXXXX`` escapes when the record
    holds lone surrogates, which UTF-8 cannot carry (so odd Unicode never fails a sink)."""
    try:
        return (json.dumps(record, ensure_ascii=False, default=_default) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(record, ensure_ascii=True, default=_default) + "\n").encode("ascii")


def _default(value: Any) -> Any:
    return to_jsonable_python(value, fallback=repr)


class JSONLSink(Sink):
    """Write one JSON object per line to ``path``."""

    output_form = "jsonl"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.name = self.path
        self._file: AtomicFile | None = None

    def open(self, fields: list[str], model: type[BaseModel] | None = None) -> None:
        self._file = AtomicFile(self.path)

    def open_resumable(self, fields: list[str], model: type[BaseModel] | None, key: str, state: dict[str, Any] | None) -> None:
        self._file = AtomicFile(self.path, key=key, resume_length=state["length"] if state else None)

    def _out(self) -> Any:
        if self._file is None:
            raise SinkError(f"{self.path}: write before open()")
        return self._file.file

    def write(self, data: bytes) -> None:
        try:
            self._out().write(data)
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def write_records(self, records: list[dict[str, Any]]) -> None:
        self.write(b"".join(dumps_line(r) for r in records))

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
