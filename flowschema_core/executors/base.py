"""The executor interface: where chunks are processed.

An executor is started once with a :class:`~flowschema_core.worker.WorkerSpec` (the model
and hooks each worker builds once), then takes chunk blobs and hands back
``concurrent.futures.Future`` objects that resolve to result blobs. The driver's
completion loop is therefore the same for every backend.

A future fails with :class:`~flowschema_core.errors.WorkerCrashedError` when the chunk
kept killing its worker (after the executor's own retries); the pipeline then splits the
chunk to isolate the record responsible. Any other exception from a worker arrives with
the worker's traceback text attached as its ``__cause__``.
"""

from __future__ import annotations

import abc
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ..worker import WorkerSpec


@dataclass
class ExecutorStats:
    """What an executor did, for the run report."""

    workers: int = 0
    restarts: int = 0
    retries: int = 0
    timeouts: int = 0  # workers stopped and replaced because a record outlived record_timeout


class RemoteTraceback(Exception):
    """Carries a worker's formatted traceback; attached as ``__cause__`` of the error."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class Executor(abc.ABC):
    """Base class of every backend (inline, process pool, Ray, third-party plugins)."""

    #: How many chunks may usefully be in flight at once (the ledger still caps bytes).
    parallelism: int = 1
    #: Whether it enforces ``WorkerSpec.record_timeout`` (stops a worker stuck on a record).
    enforces_record_timeout: bool = False

    def __init__(self) -> None:
        self.stats = ExecutorStats()

    @abc.abstractmethod
    def start(self, spec: WorkerSpec) -> None:
        """Start the workers; each builds the model and hooks from ``spec`` once."""

    @abc.abstractmethod
    def submit(self, blob: bytes) -> Future[bytes]:
        """Queue one chunk blob; the future resolves to its result blob. Raises
        ``RuntimeError`` before :meth:`start` and after :meth:`shutdown`."""

    def submit_next(self, blob: bytes) -> Future[bytes]:
        """:meth:`submit`, ahead of the chunks already queued: the pieces of a split chunk,
        which the driver waits for before anything behind them can be written. An
        executor without a queue of its own keeps this default."""
        return self.submit(blob)

    @abc.abstractmethod
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers. With ``wait`` (and no ``cancel_futures``) the chunks already
        submitted finish first, as in ``concurrent.futures``; with ``cancel_futures`` every
        unfinished future is cancelled or failed, none is left pending. Safe to call more
        than once, and before :meth:`start`; ``submit`` raises ``RuntimeError`` afterwards.

        :mod:`flowschema_core.testing` holds the contract suite every executor passes."""

    def run_pipeline(self, pipeline: Any) -> Any:
        """Run a whole :class:`~flowschema_core.pipeline.Pipeline` another way and return its
        :class:`~flowschema_core.report.RunReport` (Ray's distributed mode, where workers
        read and write the data themselves), or None: the driver runs it as usual."""
        return None

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` has run and the executor cannot start again."""
        return False

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.shutdown(wait=exc_type is None, cancel_futures=exc_type is not None)
