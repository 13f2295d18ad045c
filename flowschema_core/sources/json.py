"""A top-level JSON array of objects, streamed with ijson so a 5 GB array never loads whole."""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Iterator
from typing import Any

from ..errors import SourceError
from .base import ParseFailure, RecordSource, open_input


class _CountingReader:
    """A binary file wrapper that knows how many bytes the parser has taken."""

    def __init__(self, f: Any, offset: int = 0) -> None:
        self.f, self.offset = f, offset

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.offset += len(data)
        return data


class JSONSource(RecordSource):
    """Read ``[{...}, {...}, ...]``. An element that is not an object becomes a ``parse``
    DLQ record; a file that is not a JSON array raises :class:`SourceError` naming the
    file and the byte position."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.name = self.path

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "json", "name": self.path}

    def records(self) -> Iterator[tuple[int | None, Any]]:
        import ijson

        with open_input(self.path, "JSON file") as f:
            start = f.read(4096)
            offset = len(codecs.BOM_UTF8) if start.startswith(codecs.BOM_UTF8) else 0
            stripped = start[offset:].lstrip()
            if not stripped:
                raise SourceError(f"{self.path}: the file is empty; expected a JSON array of objects")
            if stripped[:1] != b"[":
                position = offset + len(start[offset:]) - len(stripped)
                hint = " (one object per line? use JSONLSource / a .jsonl file)" if stripped[:1] == b"{" else ""
                raise SourceError(f"{self.path}: expected a JSON array at byte {position}, found {stripped[:20]!r}{hint}")
            f.seek(offset)
            reader = _CountingReader(f, offset)
            items = ijson.items(reader, "item", use_float=True)
            count = 0
            while True:
                try:
                    item = next(items)
                except StopIteration:
                    break
                except (ijson.JSONError, ijson.IncompleteJSONError, UnicodeDecodeError, ValueError) as exc:
                    raise SourceError(f"{self.path}: not valid JSON after element {count}, near byte {reader.offset}: {_short(exc)}") from exc
                count += 1
                if isinstance(item, dict):
                    yield None, item
                else:
                    yield None, ParseFailure(f"array element {count} is a {type(item).__name__}, not an object", json.dumps(item, ensure_ascii=False, default=str))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
