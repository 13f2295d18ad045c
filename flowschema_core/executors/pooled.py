"""The lifecycle of a pooled executor, written once: submit, dispatch, a worker's death
and its replacement, failure fan-out, shutdown.

A pooled executor keeps ``workers`` :class:`~.pool.Slot` objects, a
:class:`~.pool.TaskPool` (the pending line and the rules for death and retries) and one
lock. Its subclass is only the transport: how a worker is started (:meth:`_spawn`), how
a chunk is sent to it (:meth:`_send`), how workers are stopped (:meth:`_stop_workers`),
and which tasks a slot holds (:meth:`_held`). The process pool moves bytes over pipes;
the Ray plugin over actor calls. Each calls :meth:`_worker_died` when its transport
sees a worker die, and :meth:`_fail_all` when the pool cannot go on.
"""

from __future__ import annotations

import abc
import concurrent.futures
import threading
from concurrent.futures import Future
from typing import Any, ClassVar

from ..errors import ConfigError, WorkerPoolError
from .base import Executor
from .pool import DeathOutcome, Slot, Task, TaskPool, resolve


class PooledExecutor(Executor):
    """Base of executors that keep a pool of workers, each answering its chunks in order."""

    #: How the transport's workers are called in messages ("worker process", "Ray actor").
    noun: ClassVar[str] = "worker"
    nouns: ClassVar[str] = "workers"
    #: False when a worker's answers can be lost with it (see :mod:`.pool`).
    exact_deaths: ClassVar[bool] = True

    def __init__(self, workers: int, *, prefetch: int, max_attempts: int, max_restarts: int) -> None:
        super().__init__()
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        if max_attempts < 1 or prefetch < 1 or max_restarts < 0:
            raise ConfigError("max_attempts and prefetch must be at least 1, max_restarts at least 0")
        self.workers, self.prefetch, self.max_attempts, self.max_restarts = workers, prefetch, max_attempts, max_restarts
        self.parallelism = workers * prefetch
        self._lock = threading.Lock()
        self._pool: list[Any] = []
        self._tasks = TaskPool(self.stats, prefetch=prefetch, max_attempts=max_attempts, max_restarts=max_restarts,
                               noun=self.noun, nouns=self.nouns, exact_deaths=self.exact_deaths)
        self._started = False
        self._closing = False

    @property
    def closed(self) -> bool:
        return self._closing

    def _check_startable(self) -> None:
        """Called by ``start`` before it spawns anything: a pool is started once."""
        if self._closing or self._started:
            raise ConfigError(f"this {type(self).__name__} was already used by a run; give each run a new executor "
                              "(or a name such as 'process', which does)")

    # -- the transport ---------------------------------------------------------------
    @abc.abstractmethod
    def _spawn(self) -> Slot:
        """Start one more worker (a replacement); called with the lock held."""

    @abc.abstractmethod
    def _send(self, slot: Any, task: Task) -> None:
        """Send ``task`` to ``slot``'s worker and record it in ``slot.assigned``; lock held."""

    @abc.abstractmethod
    def _stop_workers(self, pool: list[Any], graceful: bool) -> None:
        """Stop these workers (gracefully: after their current work), outside the lock."""

    def _held(self, slot: Any) -> list[Task]:
        """The tasks a slot holds, oldest first (``slot.assigned`` may hold transport objects)."""
        return list(slot.assigned)

    # -- submitting ------------------------------------------------------------------
    def submit(self, blob: bytes) -> Future[bytes]:
        return self._submit(blob, first=False)

    def submit_next(self, blob: bytes) -> Future[bytes]:
        return self._submit(blob, first=True)

    def _submit(self, blob: bytes, *, first: bool) -> Future[bytes]:
        with self._lock:
            if self._closing:
                raise RuntimeError("cannot submit to an executor that was shut down")
            if not self._started:
                raise RuntimeError(f"{type(self).__name__}.submit() called before start()")
            future = self._tasks.add(blob, first=first)
            if not future.done():  # done: the pool has failed
                self._dispatch()
        return future

    def _dispatch(self) -> None:
        # Called with the lock held.
        self._tasks.dispatch(self._pool, self._send)

    # -- deaths and failure ----------------------------------------------------------
    def _worker_died(self, slot: Any, how: str, exit_code: int | None, *, started: bool, stuck: bool = False,
                     at: tuple[int, int | None] | None = None) -> DeathOutcome:
        """Account for a dead worker and start its replacement; called with the lock held.
        ``at``: the (chunk ordinal, record index) its beacon last showed, if it has one.

        Returns the tasks to fail (outside the lock) and the error that fails the whole
        pool, if any (pass it to :meth:`_fail_all`, outside the lock)."""
        slot.alive = False
        if slot in self._pool:
            self._pool.remove(slot)
        tasks = self._held(slot)
        slot.assigned.clear()
        crashed, failure = self._tasks.on_death(tasks, how, exit_code, started=started, stuck=stuck, at=at)
        if failure is None:
            try:
                self._pool.append(self._spawn())
            except Exception as exc:  # noqa: BLE001 - the transport refused: the pool cannot go on
                failure = WorkerPoolError(f"cannot start a replacement {self.noun}: {exc}")
            else:
                self._dispatch()
        return crashed, failure

    def _fail_all(self, error: BaseException) -> None:
        """Fail every chunk, pending or held, and every later submit, with ``error``."""
        with self._lock:
            tasks = self._tasks.drain(error, [task for slot in self._pool for task in self._held(slot)])
            for slot in self._pool:
                slot.assigned.clear()
        for task in tasks:
            resolve(task.future, error=error)

    # -- shutting down ---------------------------------------------------------------
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        graceful = wait and not cancel_futures
        if graceful:
            # concurrent.futures semantics: let the submitted chunks finish first.
            with self._lock:
                unfinished = [t.future for t in self._tasks.pending] + [t.future for slot in self._pool for t in self._held(slot)]
            concurrent.futures.wait(unfinished)
        with self._lock:
            if self._closing:
                return  # shut down already: a second call is harmless
            self._closing = True
            pool, self._pool = self._pool, []
            orphans = [*self._tasks.pending, *(task for slot in pool for task in self._held(slot))]
            self._tasks.pending.clear()
            for slot in pool:
                slot.assigned.clear()
        self._stop_workers(pool, graceful)
        for task in orphans:
            if not task.future.cancel():
                resolve(task.future, error=WorkerPoolError("executor shut down"))
