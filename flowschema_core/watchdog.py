"""``record_timeout``: a worker says which record it is on; the driver stops one that
never finishes.

A stuck record (a hook calling the network without a timeout, a catastrophic regex, a C
extension that spins) may hold the worker's interpreter lock, so nothing inside the worker
can be trusted to notice. Instead each worker has a :class:`Beacon`: one 64-bit word on a
page it shares with the driver. Before each record it writes the ordinal of the chunk it is
on (counted since the worker started, as the driver counts what it sent) and the record's
index in that chunk; after the chunk, "between records". A plain memory write: about
0.1 µs a record, and only when ``record_timeout`` is set.

The driver's :class:`Watch` reads the word a few times a second. The same record for longer
than the timeout means that record is stuck, and the driver knows exactly which one: no
halving of the chunk, no waiting out the timeout once per halving. It kills the worker and
puts the chunk back at the head of the line marked with :func:`mark_stuck`; the next worker
sends the marked record to the DLQ (stage ``worker``, type ``record_timeout``) without
running it, and processes every other record of the chunk as usual. The chunk's answer is
one answer, so the records before the stuck one are run again (their outcomes count once).

The process executor gives every worker a beacon, ``record_timeout`` or not: read after a
worker died, it says which record the worker died on. A record that kills its worker
``max_attempts`` times, each time on that same record, is marked the same way (type
``worker_crashed``) instead of halving its chunk down to it, which cost two deaths a halving
(about 30 worker restarts for one poison record in a chunk of a few thousand, out of a
``max_restarts`` of 100 for the whole run).

A Ray actor may run on another node: there the driver asks the actor for the word (a
method in a concurrency group of its own) and feeds the answers to a :class:`RecordClock`,
the part of :class:`Watch` that does not read a page.
"""

from __future__ import annotations

import mmap
import os
import struct
import tempfile
import time

from . import codec

_WORD = struct.Struct("<Q")
_INDEX_BITS = 32
_INDEX_MASK = (1 << _INDEX_BITS) - 1


class Beacon:
    """The worker's side: where it writes which record it is on."""

    __slots__ = ("_page", "ordinal")

    def __init__(self, fd: int = -1) -> None:
        # fd -1: a private page, read through :meth:`word` (a Ray actor answers the driver's polls with it).
        self._page = mmap.mmap(fd, _WORD.size)
        self.ordinal = 0

    def word(self) -> int:
        return int(_WORD.unpack_from(self._page, 0)[0])

    def next_chunk(self) -> None:
        """A chunk arrived (called once per chunk received, decoded or not)."""
        self.ordinal += 1
        _WORD.pack_into(self._page, 0, self.ordinal << _INDEX_BITS)

    def on_record(self, i: int) -> None:
        _WORD.pack_into(self._page, 0, (self.ordinal << _INDEX_BITS) | (i + 1))

    def between_records(self) -> None:
        _WORD.pack_into(self._page, 0, self.ordinal << _INDEX_BITS)


class RecordClock:
    """How long a worker has been on the same record, from the beacon words it showed."""

    def __init__(self) -> None:
        self._last = 0
        self._since = time.monotonic()

    def stuck(self, word: int, timeout: float) -> tuple[int, int] | None:
        """``(chunk ordinal, record index)`` if the worker has been on one record for
        longer than ``timeout`` seconds, else None."""
        now = time.monotonic()
        if word != self._last:
            self._last, self._since = word, now
            return None
        if word & _INDEX_MASK == 0 or now - self._since < timeout:
            return None
        return word >> _INDEX_BITS, (word & _INDEX_MASK) - 1


class Watch:
    """The driver's side of a local worker's beacon: a page both map."""

    def __init__(self) -> None:
        # An unlinked file: its fd is passed to the worker, which maps the same page.
        self._file = tempfile.TemporaryFile(prefix="flowschema-beacon-")
        os.ftruncate(self._file.fileno(), _WORD.size)
        self._page = mmap.mmap(self._file.fileno(), _WORD.size)
        self._clock = RecordClock()

    @property
    def fd(self) -> int:
        return self._file.fileno()

    def stuck(self, timeout: float) -> tuple[int, int] | None:
        return self._clock.stuck(int(_WORD.unpack_from(self._page, 0)[0]), timeout)

    def where(self) -> tuple[int, int | None]:
        """``(chunk ordinal, record index)`` the worker is on (index None: between
        records); read after a worker died, it says which record it died on."""
        word = int(_WORD.unpack_from(self._page, 0)[0])
        index = word & _INDEX_MASK
        return word >> _INDEX_BITS, index - 1 if index else None

    def close(self) -> None:
        self._page.close()
        self._file.close()


def mark_stuck(blob: bytes, index: int, reason: str, error_type: str = "record_timeout") -> bytes:
    """The chunk ``blob`` again, with record ``index`` marked: a worker sends it to the
    DLQ (stage ``worker``, ``error_type``) with ``reason`` instead of running it."""
    chunk = codec.decode(blob)
    chunk.setdefault("stuck", {})[index] = [error_type, reason]
    return codec.encode(chunk)[0]


def timeout_reason(timeout: float) -> str:
    return (f"the record's hooks and validation ran longer than record_timeout={timeout:g} s; "
            "its worker was stopped and replaced, the rest of its chunk was processed")
