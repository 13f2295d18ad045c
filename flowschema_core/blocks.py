"""Cutting raw delimited bytes at record boundaries, at C speed, without parsing them.

A newline ends a record when the number of quote characters before it (within a block
that itself starts at a record boundary) is even: an odd count means the newline sits
inside a quoted field. ``bytes.count`` and ``bytes.rfind`` do the work, so the driver
spends well under a microsecond per record here and leaves parsing to the workers.

Parity is only right when every quote is where CSV allows one. A quote inside an
unquoted field (``TV 55" screen``, common in hand-made files) is a literal character
for the csv module but flips the parity, which would cut records in half. So before
trusting parity the driver checks, vectorised with numpy, that every quote parity
takes for an opening one really opens a field (follows a delimiter or a line start).
When one does not, that block is cut by parsing it with the csv module (the exact,
slower path), so where a block is cut never changes what the records are.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable
from typing import Any


def parity_holds(buf: bytes, quote: bytes, delimiter: bytes, skipinitialspace: bool = False, end: int | None = None) -> bool:
    """True when quote parity finds the exact record boundaries in ``buf[:end]`` (a
    block that starts at a record boundary): every quote that parity takes for an
    opening one follows a delimiter, a newline or another quote (an escaped ``""``), or
    a space with skipinitialspace."""
    import numpy as np

    data = np.frombuffer(buf, np.uint8, count=len(buf) if end is None else end)
    openers = np.flatnonzero(data == quote[0])[0::2]
    openers = openers[openers > 0]
    if openers.size == 0:
        return True
    before = data[openers - 1]
    # A quote right after a quote is the second half of an escaped pair ("") in a quoted field.
    ok = (before == delimiter[0]) | (before == 10) | (before == quote[0])
    if skipinitialspace:
        ok |= before == 32
    return bool(ok.all())


csv.field_size_limit(2**31 - 1)  # a field may be as long as its record (bounded by max_record_bytes)


def csv_record_ends(buf: bytes, reader_options: dict[str, Any], end: int | None = None) -> list[int]:
    """Offsets just past each complete record in ``buf[:end]``, found by the csv module.

    The exact path for blocks where parity cannot be trusted; about 2 µs a record. Bytes
    are decoded as Latin-1 so that characters and byte offsets coincide (delimiter,
    quote and newline are ASCII in every encoding a CSVSource accepts).
    """
    stop = buf.rfind(b"\n", 0, len(buf) if end is None else end) + 1
    if stop <= 0:
        return []
    lines = [line + "\n" for line in buf[:stop].decode("latin-1").split("\n")[:-1]]
    line_ends = list(itertools.accumulate(len(line) for line in lines))
    reader = csv.reader(lines, **{**reader_options, "strict": True})
    ends = []
    while True:
        try:
            next(reader)
        except StopIteration:
            break
        except csv.Error:
            if reader.line_num >= len(lines):
                break  # ran off the end inside a quoted field: that record is incomplete
        ends.append(line_ends[reader.line_num - 1])
    return ends


def record_end(buf: bytes, dialect: dict[str, Any], end: int | None = None) -> int:
    """Index just past the last complete record in ``buf[:end]``, or -1: by parity when
    :func:`parity_holds`, else by parsing (see the module docstring)."""
    if not dialect.get("quoting_enabled", True):
        stop = buf.rfind(b"\n", 0, len(buf) if end is None else end)
        return -1 if stop < 0 else stop + 1
    quote, delimiter = dialect["quotechar"].encode(), dialect["delimiter"].encode()
    if parity_holds(buf, quote, delimiter, dialect.get("skipinitialspace", False), end):
        return last_boundary(buf, quote, end)
    ends = csv_record_ends(buf, reader_options(dialect), end)
    return ends[-1] if ends else -1


_READER_OPTIONS = ("delimiter", "quotechar", "doublequote", "skipinitialspace", "strict")


def reader_options(dialect: dict[str, Any]) -> dict[str, Any]:
    """``csv.reader`` keyword arguments for a CSVSource dialect."""
    options = {k: v for k, v in dialect.items() if k in _READER_OPTIONS}
    if not dialect.get("quoting_enabled", True):
        options["quoting"] = csv.QUOTE_NONE
    return options


def last_boundary(buf: bytes, quote: bytes | None, end: int | None = None) -> int:
    """Return the index just past the last record-ending newline in ``buf[:end]``, or -1."""
    end = len(buf) if end is None else end
    pos = buf.rfind(b"\n", 0, end)
    if quote is None:
        return -1 if pos < 0 else pos + 1
    quotes_before = buf.count(quote, 0, pos) if pos >= 0 else 0
    while pos >= 0:
        if quotes_before % 2 == 0:
            return pos + 1
        prev = buf.rfind(b"\n", 0, pos)
        # Quotes between the previous newline and this one no longer count.
        quotes_before -= buf.count(quote, prev + 1 if prev >= 0 else 0, pos)
        pos = prev
    return -1


def first_boundary(buf: bytes, quote: bytes | None, start: int = 0) -> int:
    """Return the index just past the first record-ending newline at or after ``start``.

    ``start`` must itself be a record boundary (or 0). Returns -1 when there is none.
    """
    pos = buf.find(b"\n", start)
    if quote is None:
        return -1 if pos < 0 else pos + 1
    quotes = 0
    scanned = start
    while pos >= 0:
        quotes += buf.count(quote, scanned, pos)
        scanned = pos
        if quotes % 2 == 0:
            return pos + 1
        pos = buf.find(b"\n", pos + 1)
    return -1


def middle_boundary(buf: bytes, quote: bytes | None, dialect: dict[str, Any] | None = None) -> int:
    """Return a record boundary strictly inside ``buf`` near its middle, or -1 if none.

    Used to split a chunk in two when isolating a record that crashes workers. With a
    ``dialect`` whose quotes parity cannot be trusted, boundaries come from the csv module.
    """
    content_end = len(buf.rstrip(b"\r\n"))
    exact = quote is not None and dialect is not None and not parity_holds(buf, quote, dialect["delimiter"].encode(), dialect.get("skipinitialspace", False))
    if exact:
        assert dialect is not None
        boundaries = [b for b in csv_record_ends(buf + b"\n", reader_options(dialect)) if b < content_end]
    else:
        boundaries, pos = [], 0
        while (pos := first_boundary(buf, quote, pos)) >= 0 and pos < content_end:
            boundaries.append(pos)
    if not boundaries:
        return -1
    middle = len(buf) // 2
    return min(boundaries, key=lambda b: abs(b - middle))


def skip_record(read: Callable[[int], bytes], buf: bytes, quote: bytes | None, piece: int = 1 << 20) -> tuple[int, int, bytes, bool]:
    """Skip the record at the head of ``buf`` (reading more with ``read`` as needed)
    without holding it in memory; used for records larger than ``max_record_bytes``.

    Returns ``(size, newlines, rest, eof)``: the record's length in bytes, the newlines
    it spans, what follows it in the buffer, and whether the input ended.
    """
    size = newlines = quotes = 0
    while True:
        pos = 0
        while (nl := buf.find(b"\n", pos)) >= 0:
            if quote is not None:
                quotes += buf.count(quote, pos, nl)
            if quotes % 2 == 0:
                end = nl + 1
                return size + end, newlines + buf.count(b"\n", 0, end), buf[end:], False
            pos = nl + 1
        if quote is not None:
            quotes += buf.count(quote, pos)
        size += len(buf)
        newlines += buf.count(b"\n")
        buf = read(piece)
        if not buf:
            return size, newlines, b"", True
