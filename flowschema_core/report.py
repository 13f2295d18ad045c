"""The run report, and the sampler that fills its timeline."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .units import format_size

if TYPE_CHECKING:
    from .progress import ProgressSnapshot


@dataclass
class RunReport:
    """What a run did. ``rows_read == rows_valid + rows_invalid + rows_filtered`` always."""

    run_id: str
    source: str
    sink: str
    errors_sink: str
    executor: str
    rows_read: int = 0
    rows_valid: int = 0
    rows_invalid: int = 0
    rows_filtered: int = 0
    invalid_by_stage: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    bytes_read: int = 0
    max_bytes_in_flight: int = 0
    peak_bytes_in_flight: int = 0
    backpressure_waits: int = 0
    blocked_s: float = 0.0
    elapsed_s: float = 0.0
    rows_per_s: float = 0.0
    peak_rss_bytes: int = 0
    workers: int = 0
    worker_restarts: int = 0
    retries: int = 0
    interrupted: bool = False
    stop_signal: str = ""  # "SIGTERM" or "SIGINT" when a signal stopped the run
    checkpoint: str = ""
    resumed_from_record: int = 0
    started_at: str = ""
    notes: list[str] = field(default_factory=list)  # what the source noticed and handled
    timeline: list[dict[str, float]] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_valid + self.rows_invalid + self.rows_filtered

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        """A few human lines: counts, speed, and the byte budget against its peak."""
        stages = ", ".join(f"{k} {v:,}" for k, v in sorted(self.invalid_by_stage.items())) or "none"
        status = "INTERRUPTED" if self.interrupted else "done"
        return "\n".join([
            f"run {self.run_id} {status}: {self.source} -> {self.sink} (DLQ {self.errors_sink})",
            f"  read {self.rows_read:,} = valid {self.rows_valid:,} + invalid {self.rows_invalid:,} ({stages}) + filtered {self.rows_filtered:,}",
            f"  {self.elapsed_s:.2f} s, {self.rows_per_s:,.0f} rows/s, {self.chunks} chunks, "
            f"{self.workers} workers ({self.executor}), {self.worker_restarts} restarts",
            f"  peak bytes in flight {format_size(self.peak_bytes_in_flight)} of a {format_size(self.max_bytes_in_flight)} budget; "
            f"reader blocked {self.blocked_s:.2f} s",
            f"  peak RSS of the process tree {format_size(self.peak_rss_bytes)}",
        ])


def tree_rss(pid: int | None = None) -> int:
    """Resident bytes of a process and all its descendants (0 if psutil cannot tell)."""
    import psutil

    try:
        root = psutil.Process(pid or os.getpid())
        total = root.memory_info().rss
        for child in root.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return 0


class Sampler:
    """Every ``interval`` seconds, off the run's hot path: takes a progress snapshot
    (``probe(elapsed, final)``), adds bytes in flight, tree RSS and rows done to the
    timeline, and hands the snapshot to ``watcher`` (the progress display), if any."""

    def __init__(self, interval: float, probe: Callable[[float, bool], ProgressSnapshot],
                 watcher: Callable[[ProgressSnapshot], None] | None = None) -> None:
        self.interval, self._probe, self._watcher = interval, probe, watcher
        self.samples: list[dict[str, float]] = []
        self.peak_rss = 0
        self._stop = threading.Event()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name="flowschema-sampler", daemon=True)

    def start(self) -> Sampler:
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def _sample(self, final: bool = False) -> None:
        t = time.perf_counter() - self._started
        snap = self._probe(t, final)
        rss = tree_rss()
        self.peak_rss = max(self.peak_rss, rss)
        self.samples.append({"t": round(t, 3), "bytes_in_flight": snap.bytes_in_flight, "rss": rss, "rows_done": snap.rows_read})
        if self._watcher is not None and (self._thread.ident is not None):  # a run that never started shows no progress
            self._watcher(snap)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> None:
        """Stop sampling and take a last sample, the final snapshot (safe to call twice,
        or if never started)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._sample(final=True)
