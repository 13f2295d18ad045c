"""Progress of a run as it goes: a snapshot of the counters the run already keeps, and the
two ways FlowSchema shows it (a live line on a terminal, plain lines in a log).

Nothing here runs per record. The run's sampler thread (:class:`~flowschema_core.timeline.Sampler`,
the same one that fills the report's timeline) builds a :class:`ProgressSnapshot` every
``sample_interval`` seconds from counters the run keeps anyway and hands it to the
progress callback; the last snapshot (``final=True``) is taken after the run ended, so its
counts are the report's.

::

    sampler thread, every sample_interval s            Pipeline(progress=...)
    ───────────────────────────────────────            ──────────────────────
    report counts, ledger in flight / blocked,   ──►   True:     LiveLine on a terminal,
    executor restarts, source.read_progress            │         PlainLines otherwise
          └─► ProgressSnapshot (frozen) ───────────────┤ callable: called with each snapshot
                                                       └ False / None: nothing
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .units import format_size

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    from .run import Run

log = logging.getLogger("flowschema")

ProgressCallback = Callable[["ProgressSnapshot"], Any]

#: How often :class:`PlainLines` writes a line by default (seconds).
PLAIN_EVERY_S = 10.0


@dataclass(frozen=True)
class ProgressSnapshot:
    """The state of a run at one moment, handed to a progress callback.

    Live snapshots read the run's counters without stopping it, so their counts may be a
    chunk apart from each other; the final one (``final=True``) is taken after the run
    ended and its counts equal the :class:`~flowschema_core.report.RunReport`'s.
    """

    #: Seconds since the run started.
    elapsed_s: float
    #: Records whose outcome is written: ``rows_valid + rows_invalid + rows_filtered``
    #: (records read but still in a worker are not counted yet).
    rows_read: int
    #: Records in the sink so far.
    rows_valid: int
    #: Records in the DLQ so far.
    rows_invalid: int
    #: Records a hook dropped on purpose so far.
    rows_filtered: int
    #: This run's average speed so far (records of a resumed checkpoint not counted).
    rows_per_s: float
    #: Bytes of chunks between the reader and the sinks now.
    bytes_in_flight: int
    #: The byte budget (``max_bytes_in_flight``).
    max_bytes_in_flight: int
    #: Seconds the reader has waited for the budget (backpressure), the current wait included.
    blocked_s: float
    #: Worker processes / actors replaced after dying.
    worker_restarts: int
    #: Bytes of the input read so far and its size, when the source tells (files do; a
    #: query, an HTTP API or a pipe does not): None otherwise.
    input_bytes_read: int | None
    input_bytes_total: int | None
    #: The share of the input whose records are written, in [0, 1], when the size is known.
    fraction_done: float | None
    #: Seconds left at the speed so far, when ``fraction_done`` is known and above zero.
    eta_s: float | None
    #: True for the last snapshot of a run (finished, stopped or failed).
    final: bool = False


def snapshot(run: Run, elapsed: float, final: bool) -> ProgressSnapshot:
    """Read ``run``'s counters (no locks held across the run, no per-record work)."""
    report, ledger = run.report, run.ledger
    in_flight = ledger.in_flight
    position = run.source.read_progress
    read_fraction = position.fraction if position is not None else None
    fraction = None
    if read_fraction is not None:
        # The reader runs ahead of the sinks by up to the whole budget: only the share of
        # the chunks read whose results are written counts as done (inputs only: the
        # budget also holds the chunks' result allowances).
        sent = report.bytes_read
        fraction = read_fraction * ((sent - ledger.input_in_flight) / sent if sent else 0.0)
    rows = report.rows_read
    return ProgressSnapshot(
        elapsed_s=elapsed,
        rows_read=rows,
        rows_valid=report.rows_valid,
        rows_invalid=report.rows_invalid,
        rows_filtered=report.rows_filtered,
        rows_per_s=(rows - report.resumed_from_record) / elapsed if elapsed > 0 else 0.0,
        bytes_in_flight=in_flight,
        max_bytes_in_flight=ledger.limit,
        blocked_s=ledger.blocked_so_far,
        worker_restarts=run.executor.stats.restarts,
        input_bytes_read=position.done if position is not None else None,
        input_bytes_total=position.total if position is not None else None,
        fraction_done=fraction,
        eta_s=elapsed * (1 - fraction) / fraction if fraction else None,
        final=final,
    )


def check(progress: object) -> None:
    """Raise :class:`ConfigError` unless ``progress`` is what ``Pipeline(progress=...)`` takes."""
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise ConfigError(f"progress must be True, False or a callable taking a ProgressSnapshot, not {progress!r}")


def resolve(progress: bool | ProgressCallback | None) -> ProgressCallback | None:
    """What a run calls with each snapshot, or None for no progress (``True``: the default
    display for where stderr goes now)."""
    check(progress)
    if progress is None or progress is False:
        return None
    return default_display() if progress is True else progress  # type: ignore[return-value]


def default_display() -> ProgressCallback:
    """A :class:`LiveLine` when stderr is a terminal, else :class:`PlainLines` (no escape codes)."""
    from rich.console import Console

    console = Console(stderr=True)
    if console.is_terminal and not console.is_dumb_terminal:
        return LiveLine(console)
    return PlainLines()


def watcher(run: Run, progress: bool | ProgressCallback | None, every: float) -> Watcher | None:
    """What the run's sampler thread calls every ``every`` seconds, or None for no progress."""
    callback = resolve(progress)
    return Watcher(run, callback, every) if callback is not None else None


class Watcher:
    """Builds a snapshot of ``run`` and hands it to the callback (on the sampler thread).
    If the callback raises, says so once and stops calling it: a broken display must not
    stop a run, nor its timeline."""

    def __init__(self, run: Run, callback: ProgressCallback, every: float) -> None:
        self.run, self.every = run, every
        self.callback: ProgressCallback | None = callback

    def show(self, elapsed: float, final: bool) -> None:
        if self.callback is None:
            return
        try:
            self.callback(snapshot(self.run, elapsed, final))
        except Exception as exc:  # noqa: BLE001 - the callback is the user's code
            log.warning("the progress callback raised %s: %s; no more progress for this run", type(exc).__name__, exc)
            self.callback = None


# -- the two displays ---------------------------------------------------------------
def describe(snap: ProgressSnapshot) -> str:
    """One plain line: every field, no escape codes (what :class:`PlainLines` writes)."""
    parts = [
        f"read {snap.rows_read:,} (valid {snap.rows_valid:,}, invalid {snap.rows_invalid:,}"
        + (f", filtered {snap.rows_filtered:,})" if snap.rows_filtered else ")"),
        f"{snap.rows_per_s:,.0f} rows/s",
        f"in flight {format_size(snap.bytes_in_flight)} of {format_size(snap.max_bytes_in_flight)}",
        f"blocked {snap.blocked_s:.1f} s",
        f"restarts {snap.worker_restarts}",
    ]
    if snap.fraction_done is not None:
        parts.append(f"{snap.fraction_done:.0%}" + (f" ETA {_clock(snap.eta_s)}" if snap.eta_s is not None and not snap.final else ""))
    return ", ".join(parts)


class PlainLines:
    """Writes :func:`describe` as one line on stderr every ``every`` seconds, and once at
    the end: for logs and CI, where a live line would be escape codes."""

    def __init__(self, every: float = PLAIN_EVERY_S, stream: Any = None) -> None:
        self.every, self.stream = every, stream
        self._last = 0.0

    def __call__(self, snap: ProgressSnapshot) -> None:
        if not snap.final and snap.elapsed_s - self._last < self.every:
            return
        self._last = 0.0 if snap.final else snap.elapsed_s  # ready for a next run
        stream = self.stream or sys.stderr  # looked up now: a test or a tool may have swapped it
        stream.write(f"flowschema: {describe(snap)}\n")
        stream.flush()


class LiveLine:
    """One line on a terminal, redrawn with each snapshot (rich): counts, speed, a bar of
    the bytes in flight against the budget, backpressure, restarts and the ETA.

    While it is up, what the program writes to ``sys.stderr`` (FlowSchema's warnings) is
    printed above it; the last snapshot leaves the final line in place, the cursor shown.
    """

    BAR_WIDTH = 16

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console

        self.console = console if console is not None else Console(stderr=True)
        self._live: Live | None = None

    def __call__(self, snap: ProgressSnapshot) -> None:
        from rich.live import Live

        if self._live is None:
            self._live = Live(console=self.console, auto_refresh=False, transient=False, redirect_stdout=False, redirect_stderr=True)
            self._live.start()
        self._live.update(self.render(snap), refresh=True)
        if snap.final:
            self._live.stop()
            self._live = None  # a next run starts its own

    def render(self, snap: ProgressSnapshot) -> Text:
        from rich.text import Text

        share = min(1.0, snap.bytes_in_flight / snap.max_bytes_in_flight) if snap.max_bytes_in_flight else 0.0
        filled = round(share * self.BAR_WIDTH)
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append("read ").append(f"{snap.rows_read:,}", "bold")
        line.append("  valid ").append(f"{snap.rows_valid:,}", "green")
        line.append("  invalid ").append(f"{snap.rows_invalid:,}", "red" if snap.rows_invalid else "")
        if snap.rows_filtered:
            line.append("  filtered ").append(f"{snap.rows_filtered:,}")
        line.append(f"  {snap.rows_per_s:,.0f} rows/s", "cyan")
        line.append("  in flight ")
        line.append("━" * filled, "red" if share > 0.9 else "yellow").append("━" * (self.BAR_WIDTH - filled), "bright_black")
        line.append(f" {format_size(snap.bytes_in_flight)}/{format_size(snap.max_bytes_in_flight)}")
        line.append(f"  blocked {snap.blocked_s:.1f}s")
        line.append(f"  restarts {snap.worker_restarts}", "red" if snap.worker_restarts else "")
        if snap.fraction_done is not None:
            line.append(f"  {snap.fraction_done:.0%}", "bold")
            if snap.eta_s is not None and not snap.final:
                line.append(f" ETA {_clock(snap.eta_s)}")
        return line


def _clock(seconds: float | None) -> str:
    hours, rest = divmod(max(0, round(seconds or 0)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
