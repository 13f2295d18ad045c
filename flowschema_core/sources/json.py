"""A top-level JSON array of objects, streamed with ijson so a 5 GB array never loads whole."""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

from .. import storage
from ..errors import SourceError
from .base import ParseFailure, ReadProgress, RecordSource, open_input

#: Deepest nesting accepted (the top-level array counts as 1). ijson builds a prefix
#: string per level, so a document of 100 000 ``[`` would cost gigabytes and minutes
#: before the first element; msgpack then carries at most about 500 levels anyway.
MAX_DEPTH = 500

# Bytes that matter for nesting: quotes, brackets, and the whitespace JSON forbids.
_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in b'"[]{}\f\v')


class _CountingReader:
    """A binary file wrapper that knows how many bytes the parser has taken, and refuses
    nesting deeper than :data:`MAX_DEPTH` before the parser sees it.

    The depth is tracked outside JSON strings with C-speed ``bytes`` operations (escapes
    and string contents are cut out, brackets counted); only a block that could cross the
    limit is scanned bracket by bracket.
    """

    def __init__(self, f: Any, offset: int = 0, path: str = "") -> None:
        self.f, self.offset, self.path = f, offset, path
        self.depth = 0
        self.in_string = False
        self.escaped = False  # the block ended inside a string, right after a backslash

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self._track(data)
        self.offset += len(data)
        return data

    def _track(self, data: bytes) -> None:
        # Escapes first: drop escaped backslashes and escaped quotes, so that what is left
        # of a string is its two quotes; then keep only quotes and brackets. All of it is
        # bytes methods at C speed, no per-byte Python.
        if self.escaped and data:
            data, self.escaped = data[1:], False  # escaped by the last block's backslash
        if not data:
            return
        self.escaped = _odd_backslashes(data)
        reduced = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURAL)
        # Two adjacent quotes enclose nothing that matters (an empty string, or the gap
        # between two strings): dropping them keeps every other quote's parity.
        reduced = reduced.replace(b'""', b"")
        parts = reduced.split(b'"')
        outside = b"".join(parts[1::2] if self.in_string else parts[0::2])
        if len(parts) % 2 == 0:
            self.in_string = not self.in_string
        if b"\f" in outside or b"\v" in outside:
            # yajl takes them for whitespace; JSON does not (RFC 8259, section 2)
            raise SourceError(
                f"{self.path}: a form feed or vertical tab outside a string, within {len(data)} bytes after byte {self.offset}"
            )
        opened = outside.count(b"[") + outside.count(b"{")
        if self.depth + opened > MAX_DEPTH:
            depth = self.depth
            for b in outside:
                depth += 1 if b in b"[{" else -1
                if depth > MAX_DEPTH:
                    raise SourceError(
                        f"{self.path}: JSON nested deeper than {MAX_DEPTH} levels, within {len(data)} bytes after byte {self.offset}"
                    )
        self.depth += 2 * opened - len(outside)


def _odd_backslashes(data: bytes) -> bool:
    """True when ``data`` ends with an unpaired backslash (it escapes the next byte)."""
    return (len(data) - len(data.rstrip(b"\\"))) % 2 == 1


class JSONSource(RecordSource):
    """Read ``[{...}, {...}, ...]``. An element that is not an object becomes a ``parse``
    DLQ record; a file that is not a JSON array raises :class:`SourceError` naming the
    file and the byte position. ``path`` may be a URL read with ``storage_options`` (see
    :mod:`flowschema_core.storage`)."""

    def __init__(self, path: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | str | None = None) -> None:
        self.path = storage.local_path(path)
        self.name = storage.display(self.path)
        self.storage_options = storage.options(storage_options)

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "json", "name": self.path}

    def records(self) -> Iterator[tuple[int | None, Any]]:
        import ijson

        self.read_progress = ReadProgress()
        with open_input(self.path, "JSON file", self.read_progress, self.storage_options) as f:
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
            reader = _CountingReader(f, offset, self.path)
            items = ijson.items(reader, "item", use_float=True)
            count = 0
            while True:
                try:
                    item = next(items)
                except StopIteration:
                    break
                except (ijson.JSONError, ijson.IncompleteJSONError, UnicodeDecodeError, ValueError) as exc:
                    raise SourceError(
                        f"{self.path}: not valid JSON after element {count}, near byte {reader.offset}: {_short(exc)}"
                    ) from exc
                count += 1
                if isinstance(item, dict):
                    yield None, item
                else:
                    raw_text = json.dumps(item, ensure_ascii=False, default=str)
                    yield None, ParseFailure(f"array element {count} is a {type(item).__name__}, not an object", raw_text)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
