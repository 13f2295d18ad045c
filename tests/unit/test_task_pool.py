"""The shared pool rules: which chunk a worker's death is charged to, and dispatch."""

from __future__ import annotations

from concurrent.futures import Future

from flowschema_core import codec
from flowschema_core.errors import WorkerCrashedError
from flowschema_core.executors.base import ExecutorStats
from flowschema_core.executors.pool import Slot, Task, TaskPool
from flowschema_core.kinds import rows as rows_kind


def _pool(*, exact: bool, max_attempts: int = 1) -> TaskPool:
    return TaskPool(ExecutorStats(), prefetch=2, max_attempts=max_attempts, max_restarts=10, noun="w", nouns="ws", exact_deaths=exact)


def _tasks(pool: TaskPool, n: int) -> list[Task]:
    for i in range(n):
        pool.add(bytes([i]))
    return list(pool.pending)


def _send(slot: Slot, task: Task) -> None:
    slot.assigned.append(task)


def test_exact_transport_charges_the_oldest_unanswered_chunk():
    pool = _pool(exact=True)
    a, b = _tasks(pool, 2)
    pool.pending.clear()
    crashed, failure = pool.on_death([a, b], "died", 9, started=True)
    assert failure is None
    assert [task for task, _ in crashed] == [a]
    assert isinstance(crashed[0][1], WorkerCrashedError)
    assert list(pool.pending) == [b] and not b.alone


def test_inexact_transport_blames_nobody_when_several_chunks_were_on_the_worker():
    pool = _pool(exact=False)
    a, b = _tasks(pool, 2)
    pool.pending.clear()
    crashed, failure = pool.on_death([a, b], "died", None, started=True)
    assert crashed == [] and failure is None
    assert list(pool.pending) == [a, b]
    assert a.alone and b.alone and a.attempts == b.attempts == 0


def test_inexact_transport_charges_a_chunk_that_was_alone():
    pool = _pool(exact=False)
    (a,) = _tasks(pool, 1)
    pool.pending.clear()
    crashed, _ = pool.on_death([a], "died", None, started=True)
    assert [task for task, _ in crashed] == [a]


def test_a_worker_that_never_started_is_not_blamed():
    pool = _pool(exact=True)
    (a,) = _tasks(pool, 1)
    pool.pending.clear()
    crashed, _ = pool.on_death([a], "died", None, started=False)
    assert crashed == [] and list(pool.pending) == [a] and a.attempts == 0


def test_a_chunk_that_must_run_alone_waits_for_an_idle_worker_and_has_it_to_itself():
    pool = _pool(exact=False)
    a, b, c = _tasks(pool, 3)
    busy, idle = Slot(), Slot()
    busy.assigned.append(Task(b"x", Future()))
    a.alone = True
    pool.dispatch([busy, idle], _send)
    # a went alone to the idle worker; nothing joined it, and b, c went to the busy one.
    assert list(idle.assigned) == [a]
    assert list(busy.assigned)[1:] == [b]
    assert list(pool.pending) == [c]


def test_a_chunk_that_must_run_alone_holds_the_line_until_a_worker_is_idle():
    pool = _pool(exact=False)
    a, b = _tasks(pool, 2)
    first, second = Slot(), Slot()
    first.assigned.append(Task(b"x", Future()))
    second.assigned.append(Task(b"y", Future()))
    a.alone = True
    pool.dispatch([first, second], _send)
    assert list(pool.pending) == [a, b]  # nobody idle: b must not make a worker busier
    second.assigned.clear()
    pool.dispatch([first, second], _send)
    assert list(second.assigned) == [a]
    assert list(first.assigned)[1:] == [b]


def test_cancelled_chunks_are_skipped():
    pool = _pool(exact=True)
    a, b = _tasks(pool, 2)
    a.future.cancel()
    slot = Slot()
    pool.dispatch([slot], _send)
    assert list(slot.assigned) == [b]


def _chunk_of_three() -> bytes:
    return codec.encode(rows_kind.chunk([["a"], ["b"], ["c"]], ["name"], None, []))[0]


def test_deaths_on_one_record_mark_it_instead_of_failing_the_chunk():
    pool = _pool(exact=True, max_attempts=2)
    task = Task(_chunk_of_three(), Future())
    task.ordinal = 4
    assert pool.on_death([task], "died", 3, started=True, at=(4, 1)) == ([], None)  # first death: retried
    crashed, _ = pool.on_death([task], "died", 3, started=True, at=(4, 1))
    assert crashed == [] and list(pool.pending) == [task, task]
    assert codec.decode(task.blob)["stuck"] == {1: ["worker_crashed", "the record killed its w 2 times (last one died); the rest of its chunk was processed"]}
    assert task.attempts == 0 and task.marked == {1}
    # A marked record that still kills its worker (while being parsed, before the mark is
    # read): the chunk is failed to be halved, as without a beacon.
    pool.on_death([task], "died", 3, started=True, at=(4, 1))
    crashed, _ = pool.on_death([task], "died", 3, started=True, at=(4, 1))
    assert [t for t, _ in crashed] == [task]


def test_deaths_on_different_records_or_of_another_chunk_fail_the_chunk_to_be_halved():
    for second in [(4, 2), (3, 1), (4, None)]:  # another record; the beacon of another chunk; between records
        pool = _pool(exact=True, max_attempts=2)
        task = Task(_chunk_of_three(), Future())
        task.ordinal = 4
        pool.on_death([task], "died", 3, started=True, at=(4, 1))
        crashed, _ = pool.on_death([task], "died", 3, started=True, at=second)
        assert [t for t, _ in crashed] == [task] and "stuck" not in codec.decode(task.blob), second


def test_a_chunk_added_first_goes_ahead_of_the_line():
    # The pieces of a split chunk: the driver waits for them before anything behind them.
    pool = _pool(exact=True)
    pool.add(b"a")
    pool.add(b"b")
    pool.add(b"piece", first=True)
    assert [task.blob for task in pool.pending] == [b"piece", b"a", b"b"]
