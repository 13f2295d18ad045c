"""SIGTERM and Ctrl-C stop a run cleanly; a second signal ends the process at once.

Kubernetes, systemd, ``timeout``, CI runners and ``ray job stop`` stop a program with
SIGTERM; people press Ctrl-C. Either way the run should stop reading, remove its
temporary files (or keep them, when a checkpoint will resume from them), stop its workers
quietly and return a report that says ``interrupted``.

While a run is in progress on the main thread, :class:`StopSignals` turns the first
SIGTERM or SIGINT into :class:`StopRequested` (a ``KeyboardInterrupt``, so code that
already treats Ctrl-C as "stop" does the same for SIGTERM), raised in the main thread
where the run's own ``except`` clause cleans up. Once the run is cleaning up, a signal
no longer interrupts anything; a second signal, though, means "now": the default
disposition is restored and the signal re-sent, so the process ends at once (exit 143
for SIGTERM) and the next run of the same sink removes what it left.

Handlers are installed only from the main thread, and only over the default ones: a
program with its own SIGTERM or SIGINT handler keeps it. ``ray.init()`` installs one of
its own in the driver (it only exits, with status 15); that one counts as a default.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequested(KeyboardInterrupt):
    """Raised in the main thread when a stop signal arrives during a run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """Context manager: stop signals become :class:`StopRequested` while ``armed``."""

    def __init__(self) -> None:
        self.received: int | None = None  # the first stop signal, if any
        self.armed = False  # True while raising is safe: inside interruptible()
        self._previous: dict[int, Any] = {}

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """The part of a run a stop signal interrupts (raising :class:`StopRequested`)."""
        self.armed = True
        try:
            yield
        finally:
            self.armed = False

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals are delivered to the main thread only
        for signum in STOP_SIGNALS:
            current = signal.getsignal(signum)
            if current in (signal.SIG_DFL, signal.default_int_handler) or _is_ray_default(current):
                self._previous[signum] = current
                signal.signal(signum, self._handle)
        return self

    def reclaim(self) -> None:
        """Install the handlers again where ``ray.init()`` (run by an executor starting
        inside the run) has just put its own exit-only handler over them."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            current = signal.getsignal(signum)
            if current != self._handle and _is_ray_default(current):
                self._previous[signum] = current  # restored after the run: Ray keeps its own
                signal.signal(signum, self._handle)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.armed = False
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            # The second signal: stop now, as if FlowSchema had no handler.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.received = signum
        if self.armed:
            self.armed = False
            raise StopRequested(signum)


def _is_ray_default(handler: Any) -> bool:
    """Whether ``handler`` is the SIGTERM handler ``ray.init()`` installs in a driver
    (``sys.exit(signum)``: no cleanup of its own, so a run may take the signal over)."""
    return getattr(handler, "__module__", None) == "ray._private.worker" and \
        getattr(handler, "__qualname__", "") == "init.<locals>.sigterm_handler"
