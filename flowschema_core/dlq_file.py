"""Reading a DLQ file back: its records, one JSON object a line, streamed and checked.

``flowschema inspect`` and :class:`~flowschema_core.sources.dlq.DLQSource` (``flowschema
replay``) read a DLQ through :func:`read_dlq`: line by line, so memory does not grow with
the file; compressed files (``errors.jsonl.gz``, ``.bz2``, ``.xz``, ``.zst``) are read
decompressed, as every source reads them (recognised by their magic bytes).

A file is a DLQ when its first non-blank line is a DLQ record (a JSON object with
``source``, ``record``, ``stage`` and ``errors``); anything else (a plain JSON Lines file, a
CSV, a binary file) raises :class:`~flowschema_core.errors.SourceError` at once, naming
the file and what was found. A later line that is not a DLQ record (a truncated last line,
say) is not fatal: it is yielded as a :class:`BadLine`, so a caller counts it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from .dlq import STAGES
from .errors import SourceError

#: Keys every DLQ record has (the others, ``raw``, ``raw_text``, ``line``, ``ts``, may be
#: missing from a hand-written one and are read as None).
REQUIRED_KEYS = ("source", "record", "stage", "errors")
WHAT_A_DLQ_IS = "a DLQ holds one JSON object a line with source, record, stage and errors (the --errors file of flowschema run)"


@dataclass(frozen=True)
class BadLine:
    """A line of a DLQ file that is not a DLQ record: why, and its first KiB."""

    reason: str
    text: str


def problem(value: Any) -> str | None:
    """Why ``value`` (a decoded line) is not a DLQ record, or None when it is one."""
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__}, not an object"
    missing = [k for k in REQUIRED_KEYS if k not in value]
    if missing:
        return f"a JSON object without {', '.join(missing)}"
    if value["stage"] not in STAGES:
        return f"stage {value['stage']!r} is not one of {', '.join(STAGES)}"
    if not isinstance(value["errors"], list):
        return "errors is not a list"
    if isinstance(value["record"], bool) or not isinstance(value["record"], int):
        return "record is not an integer"
    line = value.get("line")
    if line is not None and (isinstance(line, bool) or not isinstance(line, int)):
        return "an object whose line is neither an integer nor null"
    return None


def decode(line: bytes) -> dict[str, Any] | BadLine:
    """One line as a DLQ record, or a :class:`BadLine` saying why it is not one."""
    try:
        value = json.loads(line)
    except (ValueError, RecursionError) as exc:
        return BadLine(f"not JSON ({exc})", _head(line))
    why = problem(value)
    return BadLine(why, _head(line)) if why else value


def _head(line: bytes) -> str:
    return line[:4096].decode("utf-8", "backslashreplace").rstrip("\r\n")[:1024]


def open_dlq(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a DLQ file (decompressed if need be) after checking that it is one."""
    from .sources.base import open_input  # here: the sources package imports this module

    f = open_input(path, "DLQ file")
    try:
        _check_head(f, os.fspath(path))
    except BaseException:
        f.close()
        raise
    return f


def _check_head(f: Any, path: str) -> None:
    """Refuse a file that is not a DLQ from its first line, before anything is read for
    good: a binary or CSV file is refused by its first byte, without reading a long line."""
    head = f.peek(4096)[:4096] if hasattr(f, "peek") else b""
    stripped = head.lstrip(b" \t\r\n")
    if stripped.startswith(b"\xef\xbb\xbf"):
        raise SourceError(f"{path} is not a FlowSchema DLQ: it starts with a byte-order mark; {WHAT_A_DLQ_IS}")
    if stripped and not stripped.startswith(b"{"):
        shown = stripped[:40].decode("utf-8", "backslashreplace")
        raise SourceError(f"{path} is not a FlowSchema DLQ: it starts with {shown!r}; {WHAT_A_DLQ_IS}")


def read_dlq(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
    """Yield ``(line_number, record_or_badline)`` for each non-blank line of the DLQ at
    ``path``. Raises :class:`SourceError` when the file is missing or its first record is
    not a DLQ record."""
    name = os.fspath(path)
    with open_dlq(name) as f:
        first = True
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            item = decode(line)
            if first and isinstance(item, BadLine):
                raise SourceError(f"{name} is not a FlowSchema DLQ: line {number} is {item.reason}; {WHAT_A_DLQ_IS}")
            first = False
            yield number, item


def check(path: str | os.PathLike[str]) -> None:
    """Raise :class:`SourceError` unless ``path`` is a readable DLQ (reads one record)."""
    for _ in read_dlq(path):
        return
