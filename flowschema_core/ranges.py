"""Exact record boundaries for byte ranges of a CSV or JSON Lines file, found in parallel.

Distributed mode cuts a file into byte ranges that workers read themselves. A range must
start at a record boundary, and each worker must know the number of the first record it
holds, or the DLQ record numbers would not be global. A newline ends a CSV record only
outside quotes, and whether a range *starts* inside quotes depends on every byte before
it. So each range is scanned on its own for *both* possible states at its start
(:func:`scan_range`, numpy, no parsing), and the driver combines the small results in
order, knowing the state at the first data byte is "outside quotes" (:func:`combine`)::

    scan k (k = 0..n-1, in parallel):  for s in (outside, inside):
        first boundary after the range's start, records ending in the range,
        lines before that boundary, the quote state at its end
    combine (driver, in order):  state = outside at the data start
        range k's exact start = its first boundary in ``state``; state = its end state

A record is what the sequential reader counts as one: a blank line (CSV: only ``\\r``;
JSON Lines: only whitespace) is no record. The workers check the count: a range whose
parse sees another number of records than planned fails the run (an accounting error).

Parity finds the boundaries the csv module would find only when every quote parity takes
for an opening one follows a delimiter, a newline or a quote (see
:mod:`flowschema_core.blocks`); where one does not (``TV 55" screen``), the file cannot be
cut this way and :func:`combine` says why, so the caller runs the single-driver mode
(which cuts such blocks by parsing them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Bytes that never make a line a record, per kind (the sequential readers' rules:
#: ``csv.reader`` yields no row for ``\\r\\n``; JSON Lines skips lines of whitespace).
_BLANK = {"csv": b"\r\n", "jsonl": b" \t\r\n\x0b\x0c"}


@dataclass(frozen=True)
class Layout:
    """What scanning needs to know of the file's format."""

    kind: str  # "csv" or "jsonl"
    quote: int | None = None  # the quote byte; None: every newline ends a record
    delimiter: int = ord(",")
    skipinitialspace: bool = False


@dataclass(frozen=True)
class StateScan:
    """A range scanned as if it started in one quote state. Offsets are absolute."""

    first: int  # just past the first record-ending newline, or -1 if the range has none
    head_content: bool  # a record byte before ``first`` (or anywhere, when first == -1)
    head_lines: int  # newlines up to and including the one at ``first`` (all, when none)
    inner: int  # records ending at the boundaries after ``first``
    last: int  # just past the last record-ending newline, or -1
    tail_content: bool  # a record byte after ``last``
    max_gap: int  # the longest record between two boundaries of this range, in bytes
    end_state: int  # 0 outside quotes, 1 inside, at the range's end
    parity_ok: bool  # every quote parity takes for an opening one can open a field


@dataclass(frozen=True)
class RangeScan:
    """One range's scan: for a start outside quotes (``states[0]``) and inside (``[1]``)."""

    start: int
    end: int
    lines: int  # newlines in the range
    states: tuple[StateScan, StateScan]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RangeScan:
        return cls(data["start"], data["end"], data["lines"], tuple(StateScan(**s) for s in data["states"]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class ExactRange:
    """A piece of the file that starts at a record boundary: bytes ``[start, end)``, its
    first record's number in the file (0-based: the records before it) and the lines before it."""

    index: int
    start: int
    end: int
    first_record: int
    records: int
    line0: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Plan:
    """The exact ranges of a file, or why it cannot be cut (``refused``)."""

    ranges: list[ExactRange]
    records: int
    refused: str | None = None


def nominal_ranges(data_start: int, size: int, range_bytes: int) -> list[tuple[int, int]]:
    """``[start, end)`` pieces of about ``range_bytes`` covering ``[data_start, size)``."""
    range_bytes = max(1, range_bytes)
    return [(s, min(s + range_bytes, size)) for s in range(data_start, size, range_bytes)]


def scan_range(buf: bytes, start: int, prev: int, layout: Layout) -> RangeScan:
    """Scan the bytes ``buf`` found at offset ``start``; ``prev`` is the byte before them
    (a newline at the data start). Cost: a few numpy passes over the range."""
    import numpy as np

    data = np.frombuffer(buf, np.uint8)
    newlines = np.flatnonzero(data == 10)
    content = np.flatnonzero(~np.isin(data, np.frombuffer(_BLANK[layout.kind], np.uint8)))
    quotes = np.flatnonzero(data == layout.quote) if layout.quote is not None else None
    if quotes is None:
        one = _state(newlines, content, start, 0, True)
        return RangeScan(start, start + len(buf), int(newlines.size), (one, one))
    quotes_before = np.searchsorted(quotes, newlines)  # quotes before each newline
    states = []
    for state in (0, 1):
        bounds = newlines[(quotes_before + state) % 2 == 0]
        openers = quotes[state::2]  # from outside quotes the first quote opens; from inside, it closes
        states.append(_state(bounds, content, start, (state + quotes.size) % 2, _openers_ok(data, openers, prev, layout), newlines))
    return RangeScan(start, start + len(buf), int(newlines.size), (states[0], states[1]))


def _openers_ok(data: Any, openers: Any, prev: int, layout: Layout) -> bool:
    import numpy as np

    if openers.size == 0:
        return True
    before = np.where(openers > 0, data[np.maximum(openers - 1, 0)], prev)
    assert layout.quote is not None
    ok = (before == layout.delimiter) | (before == 10) | (before == layout.quote)
    if layout.skipinitialspace:
        ok |= before == 32
    return bool(ok.all())


def _state(bounds: Any, content: Any, start: int, end_state: int, parity_ok: bool, newlines: Any = None) -> StateScan:
    import numpy as np

    newlines = bounds if newlines is None else newlines
    if bounds.size == 0:
        return StateScan(-1, bool(content.size), int(newlines.size), 0, -1, False, 0, end_state, parity_ok)
    content_before = np.searchsorted(content, bounds)  # record bytes before each boundary
    inner = int(np.count_nonzero(np.diff(content_before) > 0))
    return StateScan(
        first=start + int(bounds[0]) + 1,
        head_content=bool(content_before[0] > 0),
        head_lines=int(np.searchsorted(newlines, bounds[0], side="right")),
        inner=inner,
        last=start + int(bounds[-1]) + 1,
        tail_content=bool(content.size > content_before[-1]),
        max_gap=int(np.diff(bounds).max()) if bounds.size > 1 else 0,
        end_state=end_state,
        parity_ok=parity_ok,
    )


def combine(scans: list[RangeScan], data_start: int, size: int, lines0: int, max_record_bytes: int) -> Plan:
    """The exact ranges, from the scans of consecutive nominal ranges that cover
    ``[data_start, size)`` (``lines0``: the lines before ``data_start``, header included)."""
    starts: list[tuple[int, int, int]] = [(data_start, 0, lines0)]  # (offset, records before, lines before)
    state, pending, records, lines = 0, False, 0, lines0
    previous_boundary, longest = data_start, 0
    for k, scan in enumerate(scans):
        s = scan.states[state]
        if not s.parity_ok:
            return Plan([], 0, f"a quote inside an unquoted field (between bytes {scan.start} and {scan.end}) makes quote "
                               "parity unreliable, so record boundaries cannot be found in parallel")
        if s.first < 0:
            pending = pending or s.head_content
        else:
            longest = max(longest, s.first - previous_boundary, s.max_gap)
            if pending or s.head_content:
                records += 1
            if k > 0:
                starts.append((s.first, records, lines + s.head_lines))
            records += s.inner
            pending, previous_boundary = s.tail_content, s.last
        lines += scan.lines
        state = s.end_state
    if state != 0:
        return Plan([], 0, "a quote opened near the end of the file is never closed, so its last record runs to the end of the file")
    if pending:
        records += 1
    longest = max(longest, size - previous_boundary)
    if longest > max_record_bytes:
        return Plan([], 0, f"a record of up to {longest:,} bytes is longer than max_record_bytes={max_record_bytes:,}")
    ends = [s[0] for s in starts[1:]] + [size]
    counts = [s[1] for s in starts[1:]] + [records]
    ranges: list[ExactRange] = []
    for (start, before, line0), end, after in zip(starts, ends, counts):
        if end > start:
            ranges.append(ExactRange(len(ranges), start, end, before, after - before, line0))
    return Plan(ranges, records)
