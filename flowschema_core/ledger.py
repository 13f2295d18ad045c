"""The byte ledger: FlowSchema's backpressure.

A chunk costs the budget its input and its result: the msgpack payload of the chunk,
``n`` bytes, plus an allowance ``a`` for the payload of the result a worker builds from
it (valid rows in the sink's form and DLQ lines, often 2-3x the input). The reader calls
``acquire(n, result=a)`` before it submits the chunk, telling the worker ``a``; the
driver calls ``release(n, result=a)`` once that chunk's results have reached the sinks. ``acquire``
blocks while ``in_flight + n + a > limit``, so everything between the reader and the
sinks (queues, workers, results, the reorder buffer) stays inside the budget.

:class:`ResultAllowance` sizes ``a`` from the largest result/input ratio seen so far. A
worker whose result would outgrow its allowance sends back only its size; the driver
splits the chunk and runs the halves one after the other inside the chunk's reservation.

Two exceptions keep the pipeline live, and are the only ways ``peak`` can pass ``limit``:
when nothing is in flight, a chunk whose input alone is larger than the budget may go
alone; and one record whose result alone outgrows its chunk's allowance is let through
(it cannot be split), its excess counted by :meth:`ByteLedger.overdraw` while the driver
writes it.
"""

from __future__ import annotations

import math
import threading
import time

from .units import parse_size


class ByteLedger:
    """Counts the bytes in flight and blocks writers that would exceed ``limit``."""

    def __init__(self, limit: int | str) -> None:
        self.limit = parse_size(limit, name="max_bytes_in_flight")
        self._cond = threading.Condition()
        self._in_flight = 0
        self._held = 0  # number of acquisitions not yet released
        self._reserved = 0  # bytes held for the whole run (see reserve), part of _in_flight
        self._inputs = 0  # the chunks' input bytes, part of _in_flight (their result allowances are the rest)
        self.peak = 0
        self.waits = 0
        self.blocked_s = 0.0
        self._blocked_since: float | None = None  # when the current wait began, if one is on
        self._closed = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def blocked_so_far(self) -> float:
        """Seconds ``acquire`` has spent blocked, the wait going on now included (the
        progress line reads it while the reader waits; ``blocked_s`` grows only after)."""
        with self._cond:  # free while the reader waits: Condition.wait releases it
            since = self._blocked_since
            return self.blocked_s + (time.perf_counter() - since if since is not None else 0.0)

    @property
    def input_in_flight(self) -> int:
        """The input bytes of the chunks in flight, without their result allowances."""
        return self._inputs

    @property
    def outstanding(self) -> int:
        """Acquisitions not yet released (0 at the end of a clean run)."""
        return self._held

    def acquire(self, n: int, timeout: float | None = None, *, result: int = 0) -> bool:
        """Reserve ``n`` input bytes and ``result`` bytes for the chunk's result; block
        until they fit. Return False on timeout or close."""
        if n < 0 or result < 0:
            raise ValueError(f"cannot acquire a negative byte count ({n}, {result})")
        inputs, n = n, n + result
        with self._cond:
            if not self._fits(n):
                self.waits += 1
                started = self._blocked_since = time.perf_counter()
                deadline = None if timeout is None else started + timeout
                while not self._fits(n) and not self._closed:
                    remaining = None if deadline is None else deadline - time.perf_counter()
                    if remaining is not None and remaining <= 0:
                        break
                    self._cond.wait(remaining)
                self.blocked_s += time.perf_counter() - started
                self._blocked_since = None
                if not self._fits(n):
                    return False
            if self._closed:
                return False
            self._take(inputs, n)
            return True

    def try_acquire(self, n: int, *, result: int = 0) -> bool:
        """:meth:`acquire` without waiting, for a caller that polls (it counts its own waits)."""
        with self._cond:
            if self._closed or not self._fits(n + result):
                return False
            self._take(n, n + result)
            return True

    def _take(self, inputs: int, n: int) -> None:
        self._in_flight += n
        self._inputs += inputs
        self._held += 1
        self.peak = max(self.peak, self._in_flight)

    @property
    def reserved(self) -> int:
        """Bytes held for the whole run (:meth:`reserve`)."""
        return self._reserved

    def overdraw(self, n: int) -> None:
        """Count ``n`` more bytes now, without blocking, for a chunk already held: a
        result that outgrew its allowance (one record alone) is already on the driver.
        :meth:`repay` gives them back once it is written."""
        if n < 0:
            raise ValueError(f"cannot overdraw a negative byte count ({n})")
        with self._cond:
            self._in_flight += n
            self.peak = max(self.peak, self._in_flight)

    def repay(self, n: int) -> None:
        with self._cond:
            if n > self._in_flight - self._reserved:
                raise RuntimeError(f"repaid {n} bytes but only {self._in_flight - self._reserved} are in flight for chunks")
            self._in_flight -= n
            self._cond.notify_all()

    def release(self, n: int, *, result: int = 0) -> None:
        """Return the credit of a chunk whose results reached the sinks: what it acquired."""
        with self._cond:
            if n + result > self._in_flight or n > self._inputs or self._held == 0:
                raise RuntimeError(f"released {n + result} bytes but only {self._in_flight} are in flight")
            self._in_flight -= n + result
            self._inputs -= n
            self._held -= 1
            self._cond.notify_all()

    def reserve(self, n: int) -> None:
        """Count ``n`` bytes held for the whole run (what every worker keeps, such as a
        workbook's shared strings): in flight, but not a chunk. A chunk larger than what
        the budget has left still goes alone when no other chunk is in flight."""
        with self._cond:
            self._in_flight += n
            self._reserved += n
            self.peak = max(self.peak, self._in_flight)

    def unreserve(self, n: int) -> None:
        with self._cond:
            if n > self._reserved:
                raise RuntimeError(f"unreserved {n} bytes but only {self._reserved} are reserved")
            self._in_flight -= n
            self._reserved -= n
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every blocked ``acquire`` (they return False): the run is stopping."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _fits(self, n: int) -> bool:
        return self._in_flight == self._reserved or self._in_flight + n <= self.limit


class ResultAllowance:
    """How many result payload bytes the driver reserves for a chunk of ``n`` input bytes.

    ``ratio`` is the largest result/input ratio seen so far times ``headroom`` (so that a
    chunk a little messier than any before still fits), never below the ratio it started
    at, :data:`DEFAULT_RATIO`. It never comes down: a file clean at first and messy later
    would otherwise have every chunk in flight split when the mess arrives, and the
    halves of a split chunk can only share that chunk's reservation. A result too large
    for its allowance raises the ratio from its size (the driver reports it with
    :meth:`observe` before splitting the chunk).
    The reader thread reads ``ratio`` while the driver's main thread raises it: one float,
    replaced whole.
    """

    #: Result/input payload ratios measured on the repository's data (see docs/budget.md):
    #: CSV -> JSON Lines 2.5 at 3% bad rows, 3.2 at 30%; CSV -> Parquet 1.1 / 2.2; JSON
    #: 2.0; Parquet 0.8-2.0; Excel 0.2-0.4. 4 is the largest, 3.2, with 25% headroom.
    DEFAULT_RATIO = 4.0
    HEADROOM = 1.25
    #: Added to every allowance: a result's fixed envelope (its keys and counts), so that
    #: a chunk of a few bytes is not split for it nor skews the ratio.
    SLACK = 1024

    def __init__(self, ratio: float = DEFAULT_RATIO, headroom: float = HEADROOM) -> None:
        # ratio: the starting (and lowest) ratio; headroom: by how much the largest seen is exceeded.
        if ratio <= 0 or headroom < 1:
            raise ValueError(f"a result allowance needs ratio > 0 and headroom >= 1, not {ratio} and {headroom}")
        self.ratio = ratio
        self.headroom = headroom
        self.largest_seen = 0.0  # result/input payload ratio, 0 before the first result

    def of(self, n: int, room: int, limit: int) -> int:
        """The allowance of a chunk of ``n`` input bytes when the budget has ``room``
        bytes beside it (limit - reserved - n): never more than that room, so that input
        and result fit the budget together. A chunk whose input alone exceeds the budget
        goes alone (the ledger's exception) with at most ``limit`` more for its result: a
        chunk of about the budget's size then peaks near twice the budget (with the whole
        ratio's worth it was five times), and a larger result is split."""
        want = math.ceil(n * self.ratio) + self.SLACK
        return min(want, room if room > 0 else limit)

    def observe(self, n: int, result: int) -> None:
        """A chunk of ``n`` input bytes came back as (or would have been) ``result`` bytes."""
        seen = max(result - self.SLACK, 0) / max(n, 1)
        if seen > self.largest_seen:
            self.largest_seen = seen
            self.ratio = max(self.ratio, seen * self.headroom)
