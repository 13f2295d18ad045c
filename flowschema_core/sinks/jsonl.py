"""JSON Lines output: the default DLQ, and a sink for valid rows."""

from __future__ import annotations

import json
from typing import Any

from ..dlq import json_default
from .base import FileSink


def dumps_line(record: dict[str, Any]) -> bytes:
    """One JSON line. Readable UTF-8 when possible; ``\\uXXXX`` escapes when the record
    holds lone surrogates, which UTF-8 cannot carry (so odd Unicode never fails a sink)."""
    try:
        return (json.dumps(record, ensure_ascii=False, default=json_default) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(record, ensure_ascii=True, default=json_default) + "\n").encode("ascii")


class JSONLSink(FileSink):
    """Write one JSON object per line to ``path``."""

    output_form = "jsonl"

    def write(self, data: bytes) -> None:
        self._write_bytes(data)

    def write_records(self, records: list[dict[str, Any]]) -> None:
        self._write_bytes(b"".join(dumps_line(r) for r in records))
