"""The byte ledger: FlowSchema's backpressure.

The reader calls ``acquire(n)`` before it submits a chunk whose msgpack payload is ``n``
bytes long; the driver calls ``release(n)`` once that chunk's results have reached the
sinks. ``acquire`` blocks while ``in_flight + n > limit``, so everything between the
reader and the sinks (queues, workers, results, the reorder buffer) stays inside the
budget. One exception keeps the pipeline live: when nothing is in flight, a chunk larger
than the whole budget may go alone.
"""

from __future__ import annotations

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
    def outstanding(self) -> int:
        """Acquisitions not yet released (0 at the end of a clean run)."""
        return self._held

    def acquire(self, n: int, timeout: float | None = None) -> bool:
        """Reserve ``n`` bytes; block until they fit. Return False on timeout or close."""
        if n < 0:
            raise ValueError(f"cannot acquire a negative byte count ({n})")
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
            self._in_flight += n
            self._held += 1
            self.peak = max(self.peak, self._in_flight)
            return True

    def release(self, n: int) -> None:
        """Return ``n`` bytes of credit (a chunk's results reached the sinks)."""
        with self._cond:
            if n > self._in_flight or self._held == 0:
                raise RuntimeError(f"released {n} bytes but only {self._in_flight} are in flight")
            self._in_flight -= n
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
