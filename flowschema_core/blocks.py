"""Cutting raw delimited bytes at record boundaries, at C speed, without parsing them.

A newline ends a record when the number of quote characters before it (within a block
that itself starts at a record boundary) is even: an odd count means the newline sits
inside a quoted field. ``bytes.count`` and ``bytes.rfind`` do the work, so the driver
spends well under a microsecond per record here and leaves parsing to the workers.
"""

from __future__ import annotations

from collections.abc import Callable


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


def middle_boundary(buf: bytes, quote: bytes | None) -> int:
    """Return a record boundary strictly inside ``buf`` near its middle, or -1 if none.

    Used to split a chunk in two when isolating a record that crashes workers.
    """
    content_end = len(buf.rstrip(b"\r\n"))
    boundaries = []
    pos = 0
    while True:
        pos = first_boundary(buf, quote, pos)
        if pos < 0 or pos >= content_end:
            break
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
