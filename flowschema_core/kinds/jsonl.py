"""``jsonl`` chunks: raw bytes of whole JSON Lines, cut at newlines by the driver
(:mod:`flowschema_core.sources.jsonl`) and parsed here, in the worker."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..dlq import escape_undecodable
from .base import ByteBlockKind, Chunk

if TYPE_CHECKING:
    from ..worker import Batch, ChunkProcessor


def chunk(data: bytes, line0: int, encoding: str) -> Chunk:
    return {"kind": JSONLKind.name, "data": data, "line0": line0, "encoding": encoding}


class JSONLKind(ByteBlockKind):
    name = "jsonl"

    def parse(self, chunk: Chunk, processor: ChunkProcessor, batch: Batch) -> None:
        data: bytes = chunk["data"]
        line = chunk["line0"]
        i = 0
        for raw in data.split(b"\n"):
            line += 1
            if not raw.strip():
                continue  # blank lines hold no record
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, absurd nesting
                batch.parse_error(i, line, f"invalid JSON: {exc}", escape_undecodable(raw.decode("utf-8", "surrogateescape")))
            else:
                if isinstance(record, dict):
                    processor.record(record, i, line, batch)
                else:
                    reason = f"expected a JSON object, got {type(record).__name__}"
                    batch.parse_error(i, line, reason, raw.decode("utf-8", "backslashreplace"))
            i += 1
        batch.seen = i


KIND = JSONLKind()
