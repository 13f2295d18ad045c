"""Bookkeeping shared by pooled executors: which chunk is on which worker, and what a
worker's death costs.

Transport-free: the process pool moves bytes over pipes, the Ray plugin over actor
calls; both keep their workers in :class:`Slot` objects and call in here with their own
lock held. Each worker answers its chunks in the order it received them, so when one
dies the chunk it was working on is the oldest one it had not answered. That chunk is
charged an attempt (after ``max_attempts`` its future fails with
:class:`WorkerCrashedError`, and the pipeline splits it to isolate the record
responsible); the chunks queued behind it go back to the front of the line uncharged.
After ``max_restarts`` replacements the pool fails with :class:`WorkerPoolError`
instead of restarting workers forever.
"""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from ..errors import WorkerCrashedError, WorkerPoolError
from .base import ExecutorStats


class Task:
    """One submitted chunk: its blob, the caller's future, and the deaths it caused."""

    __slots__ = ("attempts", "blob", "future")

    def __init__(self, blob: bytes, future: Future[bytes]) -> None:
        self.blob, self.future, self.attempts = blob, future, 0


class Slot:
    """One worker as the pool sees it: alive, started, and what it has not answered yet
    (oldest first; a transport may keep its own per-call objects there)."""

    def __init__(self) -> None:
        self.assigned: collections.deque[Any] = collections.deque()
        self.alive = True
        self.ready = False


class TaskPool:
    """The pending line of chunks and the rules for dispatch, death and failure."""

    def __init__(self, stats: ExecutorStats, *, prefetch: int, max_attempts: int, max_restarts: int, noun: str, nouns: str) -> None:
        self.stats, self.noun, self.nouns = stats, noun, nouns
        self.prefetch, self.max_attempts, self.max_restarts = prefetch, max_attempts, max_restarts
        self.pending: collections.deque[Task] = collections.deque()
        self.failure: BaseException | None = None

    def add(self, blob: bytes) -> Future[bytes]:
        """Queue a chunk (or fail its future at once if the pool has failed)."""
        future: Future[bytes] = Future()
        if self.failure is not None:
            future.set_exception(self.failure)
        else:
            self.pending.append(Task(blob, future))
        return future

    def dispatch(self, slots: Iterable[Slot], send: Callable[[Slot, Task], None]) -> None:
        """Hand pending chunks to the least-loaded live workers, ``prefetch`` at most each."""
        slots = list(slots)
        while self.pending:
            free = [s for s in slots if s.alive and len(s.assigned) < self.prefetch]
            if not free:
                return
            task = self.pending.popleft()
            if not task.future.done():  # skip chunks the caller cancelled
                send(min(free, key=lambda s: len(s.assigned)), task)

    def on_death(self, tasks: list[Task], how: str, exit_code: int | None, *, started: bool) -> tuple[list[tuple[Task, BaseException]], BaseException | None]:
        """Account for a dead worker that held ``tasks`` (oldest first).

        Returns the tasks to fail now (their chunk killed a worker ``max_attempts``
        times) and, if the restart budget is spent, the error that fails the whole pool.
        Otherwise the caller starts a replacement (counted here). A worker that died
        before it started is not blamed for the chunks it was given.
        """
        crashed: list[tuple[Task, BaseException]] = []
        requeue = list(tasks)
        if tasks and started:
            culprit = tasks[0]
            culprit.attempts += 1
            if culprit.attempts >= self.max_attempts:
                message = f"the {self.noun} {how} on this chunk {culprit.attempts} times"
                crashed.append((culprit, WorkerCrashedError(message, exit_code)))
                requeue.pop(0)
            else:
                self.stats.retries += 1
        self.pending.extendleft(reversed(requeue))
        if self.stats.restarts >= self.max_restarts:
            return crashed, WorkerPoolError(
                f"{self.nouns} died {self.stats.restarts + 1} times (last one {how}); "
                f"stopping instead of restarting them forever (max_restarts={self.max_restarts})"
            )
        self.stats.restarts += 1
        return crashed, None

    def drain(self, error: BaseException, held: Iterable[Task]) -> list[Task]:
        """Fail the pool: every later ``add`` fails with ``error``; return every task
        still pending or ``held`` by a worker, for the caller to fail outside its lock."""
        self.failure = error
        tasks = [*self.pending, *held]
        self.pending.clear()
        return tasks


def resolve(future: Future[bytes], *, result: bytes | None = None, error: BaseException | None = None) -> None:
    """Settle a future unless it is already settled or cancelled."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]
    except concurrent.futures.InvalidStateError:
        pass  # cancelled meanwhile
