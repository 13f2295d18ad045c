"""Run chunks in the calling thread: no parallelism, easiest to debug."""

from __future__ import annotations

from concurrent.futures import Future

from ..errors import ConfigError, WorkerCrashedError
from ..worker import ChunkProcessor, WorkerSpec
from .base import Executor


class InlineExecutor(Executor):
    """Processes each chunk at ``submit`` time; the returned future is already resolved."""

    def __init__(self, workers: int | None = None) -> None:
        super().__init__()
        if workers not in (None, 1):
            raise ConfigError(f"the inline executor runs in the calling thread (one worker), not {workers}; use executor='process'")
        self._processor: ChunkProcessor | None = None

    def start(self, spec: WorkerSpec) -> None:
        self._processor = ChunkProcessor(spec)
        self.stats.workers = 1

    def submit(self, blob: bytes) -> Future[bytes]:
        if self._processor is None:
            raise RuntimeError("InlineExecutor.submit() called before start()")
        future: Future[bytes] = Future()
        try:
            future.set_result(self._processor.process(blob))
        except MemoryError:
            # As in a worker process: the chunk is split until the record responsible is
            # alone, and that record goes to the DLQ (stage "worker") instead of ending the run.
            future.set_exception(WorkerCrashedError("the chunk ran out of memory (MemoryError)"))
        except Exception as exc:  # noqa: BLE001 - the future carries it to the driver
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._processor = None
