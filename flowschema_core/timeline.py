"""The run's timeline: samples of bytes in flight, RSS of the process tree and rows done.

When the sampler samples, so that a run of any length gets a timeline worth plotting and
a long run's stays small::

    start ─ one sample at once (the timeline always has a start and an end); ``t`` counts
      │     from the run's start, so the samples begin once the workers are ready
      │     then fast: the gap is (time since start) / RAMP_SAMPLES, at least interval / FAST_START,
      │     so a run of a fraction of a second still gets dozens of samples
      │     (0.25 s interval: every 10 ms in the first 0.4 s)
      ├─ steady: one sample every ``interval`` once the run is old enough
      ├─ full (MAX_SAMPLES): drop every other sample, keep the first and the latest, and
      │     sample half as often from then on, so the samples stay evenly spread and
      │     their number stays between MAX_SAMPLES / 2 and MAX_SAMPLES for any length
    stop ─ one last sample

The same thread drives the progress display, if the run has one (``watch``), on its own
fixed cadence (the pipeline's ``sample_interval``): thinning slows the timeline of a long
run, never the progress line.

A sample costs a few tenths of a millisecond of the sampler thread: RSS is read from
each process of the tree, but the tree itself (which means reading all of /proc, ~5 ms)
is listed again only every CHILDREN_REFRESH_S seconds. Thinning keeps every sample's
values as measured, and the report's peaks do not depend on it: ``peak_bytes_in_flight`` is
the ledger's exact peak, ``peak_rss_bytes`` the highest of all samples, thinned out or not.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Protocol

from typing_extensions import TypedDict  # pydantic reads it (on 3.11) when a report is loaded

#: The most samples a timeline holds (about 40 KB of JSON).
MAX_SAMPLES = 512
#: While a run is young, sample so that the timeline so far has about this many samples...
RAMP_SAMPLES = 40
#: ...but at most this many times as often as the steady interval.
FAST_START = 25
#: How often the list of the tree's processes is refreshed (a restarted worker shows then).
CHILDREN_REFRESH_S = 1.0


class Watch(Protocol):
    """What the sampler thread also drives: the progress display (:mod:`flowschema_core.progress`)."""

    every: float

    def show(self, elapsed: float, final: bool) -> None: ...


class Sample(TypedDict):
    """One point of the timeline: seconds since the run started, and what was measured."""

    t: float
    bytes_in_flight: float
    rss: float
    rows_done: float


def tree_rss(pid: int | None = None) -> int:
    """Resident bytes of a process and all its descendants, listed now (0 if psutil cannot tell)."""
    import psutil

    try:
        return ProcessTree(pid, refresh=0).rss()
    except psutil.Error:  # the process is gone
        return 0


class ProcessTree:
    """RSS of this process and its descendants, cheap enough to read many times a second:
    the descendants are listed at most every ``refresh`` seconds, their RSS read each time."""

    def __init__(self, pid: int | None = None, refresh: float = CHILDREN_REFRESH_S) -> None:
        import psutil

        self._psutil = psutil
        self._root = psutil.Process(pid or os.getpid())
        self._refresh = refresh
        self._children: list[psutil.Process] = []
        self._listed_at = float("-inf")

    def rss(self) -> int:
        psutil = self._psutil
        now = time.monotonic()
        if now - self._listed_at >= self._refresh:
            try:
                self._children = self._root.children(recursive=True)
            except psutil.Error:
                self._children = []
            self._listed_at = now
        total = 0
        for process in (self._root, *self._children):
            try:
                total += process.memory_info().rss
            except psutil.Error:
                pass  # a worker that ended since the tree was listed
        return total


class Sampler:
    """Samples bytes in flight, tree RSS and rows done on a thread of its own, at a rate
    that adapts to the run's length (see the module docstring); ``interval`` is the steady
    gap between samples, before thinning makes it longer."""

    def __init__(self, interval: float, in_flight: Callable[[], float], rows_done: Callable[[], float],
                 max_samples: int = MAX_SAMPLES, watch: Watch | None = None) -> None:
        if max_samples < 4:
            raise ValueError("max_samples must be at least 4")
        self.watch = watch  # the progress display: called on its own cadence, on this same thread
        self.interval, self._in_flight, self._rows_done = interval, in_flight, rows_done
        self.max_samples = max_samples
        self.samples: list[Sample] = []
        self.peak_rss = 0
        self._tree: ProcessTree | None = None
        self._stop = threading.Event()
        self._started = time.perf_counter()  # t = 0 of the samples: the run's start
        self._sampling_since = self._started  # the ramp's start: when the workers are ready
        self._thread = threading.Thread(target=self._loop, name="flowschema-sampler", daemon=True)

    def start(self) -> Sampler:
        """Take the first sample and go on on a thread (call it when the workers are ready)."""
        self._sampling_since = time.perf_counter()
        self._sample()
        self._thread.start()
        return self

    def _sample(self) -> None:
        if self._tree is None:
            self._tree = ProcessTree()
        rss = self._tree.rss()
        self.peak_rss = max(self.peak_rss, rss)
        self.samples.append({
            "t": round(time.perf_counter() - self._started, 4),
            "bytes_in_flight": self._in_flight(),
            "rss": rss,
            "rows_done": self._rows_done(),
        })

    def next_gap(self) -> float:
        """Seconds until the next sample: short while the run is young, ``interval`` later."""
        elapsed = time.perf_counter() - self._sampling_since
        return min(self.interval, max(self.interval / FAST_START, elapsed / RAMP_SAMPLES))

    def _loop(self) -> None:
        now = time.perf_counter()
        next_sample = now + self.next_gap()
        next_watch = now if self.watch is not None else float("inf")
        while not self._stop.wait(max(0.0, min(next_sample, next_watch) - now)):
            now = time.perf_counter()
            if now >= next_sample:
                self._sample()
                if len(self.samples) > self.max_samples:
                    self._thin()
                next_sample = now + self.next_gap()
            if self.watch is not None and now >= next_watch:
                self.watch.show(now - self._started, final=False)
                next_watch = now + self.watch.every
            now = time.perf_counter()

    def _thin(self) -> None:
        # An odd count keeps both ends: samples 0, 2, ..., n-1 (the latest).
        kept = self.samples[:: 2] if len(self.samples) % 2 else self.samples[:1] + self.samples[1::2]
        self.samples = kept
        self.interval *= 2

    def stop(self) -> None:
        """Stop sampling and take a last sample (safe to call twice, or if never started)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._sample()
        if self.watch is not None and self._thread.ident is not None:  # a run that never started shows no progress
            self.watch.show(time.perf_counter() - self._started, final=True)
