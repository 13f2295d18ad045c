"""JSON Lines: one JSON object per line, shipped as raw byte blocks cut at newlines.

A JSON text cannot hold a raw newline, so every newline ends a record and the driver
cuts blocks with one ``rfind``. Workers parse each line; a line that is not valid JSON,
or not an object, becomes a ``parse`` DLQ record with its text.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator, Mapping
from typing import Any

from .. import blocks, codec, storage
from ..kinds import jsonl as jsonl_kind
from ..units import parse_size
from .base import ReadProgress, Source, open_input, oversized_record

_READ_SIZE = 1 << 20


class JSONLSource(Source):
    """Read a JSON Lines file (``.jsonl`` / ``.ndjson``), a local path or a URL read with
    ``storage_options`` (see :mod:`flowschema_core.storage`). Blank lines are skipped."""

    def __init__(self, path: str | os.PathLike[str], *, max_record_bytes: int | str = "64MiB",
                 storage_options: Mapping[str, Any] | str | None = None) -> None:
        self.path = storage.local_path(path)
        self.name = storage.display(self.path)
        self.storage_options = storage.options(storage_options)
        self.max_record_bytes = parse_size(max_record_bytes, name="max_record_bytes")

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "jsonl", "name": self.path}

    def chunks(self, target_bytes: int) -> Iterator[tuple[bytes, int]]:
        self.read_progress = ReadProgress()
        with open_input(self.path, "JSON Lines file", self.read_progress, self.storage_options) as f:
            buf = f.read(_READ_SIZE)
            if buf.startswith(codecs.BOM_UTF8):
                buf = buf[len(codecs.BOM_UTF8):]
            lines_before = 0
            eof = False
            while not eof or buf:
                if not eof and len(buf) < target_bytes:
                    more = f.read(max(target_bytes - len(buf), _READ_SIZE))
                    eof = not more
                    buf += more
                    if not eof:
                        continue
                cut = len(buf) if eof and len(buf) <= target_bytes else buf.rfind(b"\n", 0, target_bytes) + 1
                if cut <= 0 and len(buf) > target_bytes:
                    cut = len(buf) if eof else buf.rfind(b"\n") + 1  # one line longer than a chunk
                if cut <= 0:
                    if len(buf) < self.max_record_bytes:
                        more = f.read(_READ_SIZE)
                        eof = not more
                        buf += more
                        continue
                    head = buf[:1024]
                    size, newlines, buf, eof = blocks.skip_record(f.read, buf, None)
                    yield oversized_record(lines_before + 1, size, head, self.max_record_bytes)
                    lines_before += newlines
                    continue
                block, buf = buf[:cut], buf[cut:]
                yield codec.encode(jsonl_kind.chunk(block, lines_before, "utf-8"))
                lines_before += block.count(b"\n")
