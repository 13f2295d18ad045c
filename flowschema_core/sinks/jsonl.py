"""JSON Lines output: the default DLQ, and a sink for valid rows."""

from __future__ import annotations

from typing import Any

from ..dlq import dumps
from .base import FileSink


def dumps_line(record: dict[str, Any]) -> bytes:
    """One JSON line (see :func:`flowschema_core.dlq.dumps`)."""
    return dumps(record) + b"\n"


class JSONLSink(FileSink):
    """Write one JSON object per line to ``path``."""

    output_form = "jsonl"

    def write(self, data: bytes) -> None:
        self._write_bytes(data)

    def write_records(self, records: list[dict[str, Any]]) -> None:
        self._write_bytes(b"".join(dumps_line(r) for r in records))
