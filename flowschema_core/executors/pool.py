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

"The oldest unanswered chunk" is exact only when a worker's answers cannot be lost with
it. A pipe keeps what was written before the writer died, so the process pool knows.
A Ray actor that dies right after finishing a call may take that call's reply with it
(Ray then reports the call as failed), so the chunk that *looks* oldest may be one the
actor had already finished. Such a transport passes ``exact_deaths=False``: a death
with more than one chunk on the worker charges nobody; each of those chunks is retried
*alone* on a worker that holds nothing else, where a death can only be its own. No good
chunk is ever blamed for its neighbour, at the price of one more death per poison chunk.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from ..errors import WorkerCrashedError, WorkerPoolError
from ..watchdog import mark_stuck
from .base import ExecutorStats

log = logging.getLogger("flowschema")


class Task:
    """One submitted chunk: its blob, the caller's future, the deaths it caused, and
    whether it must run alone (it was on a worker that died, and may be the reason)."""

    __slots__ = ("alone", "attempts", "blob", "deaths_at", "future", "marked", "ordinal")

    def __init__(self, blob: bytes, future: Future[bytes]) -> None:
        self.blob, self.future, self.attempts = blob, future, 0
        self.alone = False
        self.ordinal = 0  # which chunk it is for the worker that holds it (1 = the first it got)
        self.deaths_at: list[int | None] = []  # the record each of its deaths happened on (None: not known)
        self.marked: set[int] = set()  # records marked not to run after they killed workers


#: What a death costs: the tasks to fail now, and the error that fails the pool (if any).
DeathOutcome = tuple[list[tuple[Task, BaseException]], BaseException | None]


class Slot:
    """One worker as the pool sees it: alive, started, and what it has not answered yet
    (oldest first; a transport may keep its own per-call objects there)."""

    def __init__(self) -> None:
        self.assigned: collections.deque[Any] = collections.deque()
        self.alive = True
        self.ready = False
        self.alone = False  # the last chunk sent must be its only one until answered

    def takes(self, task: Task, prefetch: int) -> bool:
        """Whether ``task`` may be sent to this worker now."""
        if not self.alive:
            return False
        if task.alone:
            return not self.assigned
        return len(self.assigned) < prefetch and not (self.alone and self.assigned)


class TaskPool:
    """The pending line of chunks and the rules for dispatch, death and failure."""

    def __init__(self, stats: ExecutorStats, *, prefetch: int, max_attempts: int, max_restarts: int, noun: str, nouns: str,
                 exact_deaths: bool = True) -> None:
        self.stats, self.noun, self.nouns = stats, noun, nouns
        self.exact_deaths = exact_deaths
        self.prefetch, self.max_attempts, self.max_restarts = prefetch, max_attempts, max_restarts
        self.pending: collections.deque[Task] = collections.deque()
        self.failure: BaseException | None = None

    def add(self, blob: bytes, *, first: bool = False) -> Future[bytes]:
        """Queue a chunk, at the back (``first``: the front) of the line, or fail its
        future at once if the pool has failed."""
        future: Future[bytes] = Future()
        if self.failure is not None:
            future.set_exception(self.failure)
        elif first:
            self.pending.appendleft(Task(blob, future))
        else:
            self.pending.append(Task(blob, future))
        return future

    def dispatch(self, slots: Iterable[Slot], send: Callable[[Slot, Task], None]) -> None:
        """Hand pending chunks to the least-loaded live workers, ``prefetch`` at most each.

        A chunk that must run alone waits at the head of the line for an idle worker;
        the chunks behind it wait too, so that busy workers drain and one becomes idle.
        """
        slots = list(slots)
        while self.pending:
            task = self.pending[0]
            if task.future.done():  # skip chunks the caller cancelled
                self.pending.popleft()
                continue
            free = [s for s in slots if s.takes(task, self.prefetch)]
            if not free:
                return
            self.pending.popleft()
            slot = min(free, key=lambda s: len(s.assigned))
            slot.alone = task.alone
            send(slot, task)

    def on_death(self, tasks: list[Task], how: str, exit_code: int | None, *, started: bool, stuck: bool = False,
                 at: tuple[int, int | None] | None = None) -> DeathOutcome:
        """Account for a dead worker that held ``tasks`` (oldest first).

        Returns the tasks to fail now (their chunk killed a worker ``max_attempts``
        times) and, if the restart budget is spent, the error that fails the whole pool.
        Otherwise the caller starts a replacement (counted here). A worker that died
        before it started is not blamed for the chunks it was given. A worker stopped
        because one record outlived ``record_timeout`` (``stuck``) blames nobody either:
        that record is already marked in its chunk, and the replacement is counted apart
        (as a timeout, not against ``max_restarts``: the records bound how many there are).

        ``at`` is the (chunk ordinal, record index) the worker's beacon showed when it died.
        A chunk whose ``max_attempts`` deaths all happened on the same record has that
        record marked (it goes to the DLQ without running, see
        :func:`~flowschema_core.watchdog.mark_stuck`) and goes back to the line, instead of
        failing to be halved. Should a marked record still kill the worker (it dies before
        the mark is read: while being parsed), the chunk is halved as before.
        """
        crashed: list[tuple[Task, BaseException]] = []
        requeue = list(tasks)
        if stuck:
            self.pending.extendleft(reversed(requeue))
            self.stats.timeouts += 1
            return crashed, None
        if started and len(tasks) > 1 and not self.exact_deaths:
            # Which of them killed it is not known: retry each alone, blame none yet.
            log.info("a %s %s holding %d chunks; retrying each of them alone", self.noun, how, len(tasks))
            for task in tasks:
                task.alone = True
            self.stats.retries += 1
        elif tasks and started:
            culprit = tasks[0]
            culprit.attempts += 1
            culprit.deaths_at.append(at[1] if at is not None and at[0] == culprit.ordinal else None)
            record = _the_same_record(culprit.deaths_at)
            if culprit.attempts >= self.max_attempts and record is not None and record not in culprit.marked:
                log.warning("record %d of a chunk killed its %s %d times (last one %s); it goes to the DLQ, the rest of its chunk is retried",
                            record + 1, self.noun, culprit.attempts, how)
                culprit.blob = mark_stuck(culprit.blob, record, f"the record killed its {self.noun} {culprit.attempts} times "
                                          f"(last one {how}); the rest of its chunk was processed", "worker_crashed")
                culprit.marked.add(record)
                culprit.attempts, culprit.deaths_at = 0, []
            elif culprit.attempts >= self.max_attempts:
                message = f"the {self.noun} {how} on this chunk {culprit.attempts} times"
                log.warning("%s; the chunk is split to find the record responsible", message)
                crashed.append((culprit, WorkerCrashedError(message, exit_code)))
                requeue.pop(0)
            else:
                log.info("a %s %s on a chunk (attempt %d of %d); retrying it", self.noun, how, culprit.attempts, self.max_attempts)
                self.stats.retries += 1
        self.pending.extendleft(reversed(requeue))
        if self.stats.restarts >= self.max_restarts:
            error = WorkerPoolError(
                f"{self.nouns} died {self.stats.restarts + 1} times (last one {how}); "
                f"stopping instead of restarting them forever (max_restarts={self.max_restarts})"
            )
            log.error("%s", error)
            return crashed, error
        self.stats.restarts += 1
        log.info("starting a replacement %s (restart %d of at most %d)", self.noun, self.stats.restarts, self.max_restarts)
        return crashed, None

    def drain(self, error: BaseException, held: Iterable[Task]) -> list[Task]:
        """Fail the pool: every later ``add`` fails with ``error``; return every task
        still pending or ``held`` by a worker, for the caller to fail outside its lock."""
        self.failure = error
        tasks = [*self.pending, *held]
        self.pending.clear()
        return tasks


def _the_same_record(deaths_at: list[int | None]) -> int | None:
    """The record every death happened on, if they all happened on one known record."""
    first = deaths_at[0] if deaths_at else None
    return first if first is not None and all(at == first for at in deaths_at) else None


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
