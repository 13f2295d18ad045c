"""The executor contract, as a test suite a plugin author can import (needs pytest).

Every executor — inline, the process pool, Ray, a third-party plugin — must behave the
same towards the pipeline. Subclass :class:`ExecutorContract` in your tests and give it a
``make_executor`` fixture returning a factory of *unstarted* executors::

    import pytest
    from flowschema_core.testing import ExecutorContract

    class TestMyExecutor(ExecutorContract):
        @pytest.fixture
        def make_executor(self):
            return lambda: MyExecutor(workers=2)

The suite checks: ``submit`` returns a ``concurrent.futures.Future`` resolving to the same
result blob as processing the chunk inline; each future gets its own chunk's result; a
worker's exception reaches the future as a :class:`FlowSchemaError` and the executor
goes on; a chunk's result allowance (the blob's header) reaches its worker unchanged;
``submit`` before ``start`` raises ``RuntimeError``; ``shutdown(wait=True)`` lets
submitted chunks finish, after which ``submit`` raises ``RuntimeError``;
``shutdown`` may be called more than once; ``shutdown(cancel_futures=True)`` settles
every future; the executor is a context manager.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import Future

import pytest
from pydantic import BaseModel

from . import codec
from .errors import FlowSchemaError
from .executors.base import Executor
from .executors.inline import InlineExecutor
from .sources.csv import CSVSource
from .worker import WorkerSpec

#: A blob no worker can decode: its future must fail, and the worker must go on.
NOT_A_CHUNK = codec.MAGIC + bytes((codec.VERSION, 0)) + b" this is not a chunk"


class ContractItem(BaseModel):
    """The model the contract's chunks are validated with (importable by any worker)."""

    id: int
    name: str
    price: float


def contract_blobs(rows: int = 2000, chunk_bytes: int = 2048) -> list[bytes]:
    """Chunk blobs of a small CSV with some invalid and ragged rows."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "items.csv")
        with open(path, "w", encoding="utf-8") as f:
            f.write("id,name,price\n")
            for i in range(1, rows + 1):
                f.write(f"{i},item {i}\n" if i % 97 == 0 else f"{i},item {i},{'x' if i % 31 == 0 else i / 4}\n")
        return [blob for blob, _ in CSVSource(path).chunks(chunk_bytes)]


@functools.cache
def _blobs_and_results() -> tuple[list[bytes], list[bytes]]:
    blobs = contract_blobs()
    inline = InlineExecutor()
    inline.start(WorkerSpec(ContractItem))
    return blobs, [inline.submit(b).result() for b in blobs]


class ExecutorContract:
    """Tests every executor must pass; subclass with a ``make_executor`` fixture."""

    @pytest.fixture
    def make_executor(self) -> Callable[[], Executor]:
        raise NotImplementedError("give your ExecutorContract subclass a make_executor fixture")

    @pytest.fixture
    def blobs(self) -> list[bytes]:
        return _blobs_and_results()[0]

    @pytest.fixture
    def expected(self) -> list[bytes]:
        return _blobs_and_results()[1]

    @pytest.fixture
    def started(self, make_executor: Callable[[], Executor]):
        executor = make_executor()
        executor.start(WorkerSpec(ContractItem))
        yield executor
        executor.shutdown(wait=False, cancel_futures=True)

    def test_submit_returns_a_future_of_the_inline_result(self, started: Executor, blobs: list[bytes], expected: list[bytes]) -> None:
        future = started.submit(blobs[0])
        assert isinstance(future, Future)
        assert future.result(timeout=120) == expected[0]
        assert started.stats.workers >= 1 and started.parallelism >= 1

    def test_each_future_gets_its_own_chunk_in_submission_order(self, started: Executor, blobs: list[bytes], expected: list[bytes]) -> None:
        assert len(blobs) > 10
        futures = [started.submit(b) for b in blobs]
        assert [f.result(timeout=120) for f in futures] == expected

    def test_a_worker_exception_fails_only_its_future(self, started: Executor, blobs: list[bytes], expected: list[bytes]) -> None:
        bad = started.submit(NOT_A_CHUNK)
        with pytest.raises(FlowSchemaError):
            bad.result(timeout=120)
        assert started.submit(blobs[1]).result(timeout=120) == expected[1]

    def test_the_result_allowance_reaches_the_worker(self, started: Executor, blobs: list[bytes], expected: list[bytes]) -> None:
        # The driver puts it in front of the blob; an executor passes the blob on as it is.
        size = len(codec.unframe(expected[3]))
        assert codec.decode(started.submit(codec.with_allowance(blobs[3], size - 1)).result(timeout=120)) == {"result_too_large": size}
        assert started.submit(codec.with_allowance(blobs[3], size)).result(timeout=120) == expected[3]

    def test_submit_before_start_raises(self, make_executor: Callable[[], Executor], blobs: list[bytes]) -> None:
        executor = make_executor()
        with pytest.raises(RuntimeError):
            executor.submit(blobs[0])
        executor.shutdown()

    def test_shutdown_waits_for_submitted_chunks_then_refuses_more(self, started: Executor, blobs: list[bytes], expected: list[bytes]) -> None:
        futures = [started.submit(b) for b in blobs[:6]]
        started.shutdown(wait=True)
        assert all(f.done() for f in futures)
        assert [f.result() for f in futures] == expected[:6]
        with pytest.raises(RuntimeError):
            started.submit(blobs[0])
        started.shutdown()  # a second shutdown is harmless
        started.shutdown(wait=False, cancel_futures=True)

    def test_shutdown_with_cancel_futures_settles_every_future(self, started: Executor, blobs: list[bytes]) -> None:
        futures = [started.submit(b) for b in blobs]
        started.shutdown(wait=False, cancel_futures=True)
        for future in futures:
            assert future.done()
            if not future.cancelled() and future.exception() is not None:
                assert isinstance(future.exception(), FlowSchemaError)

    def test_context_manager_shuts_down(self, make_executor: Callable[[], Executor], blobs: list[bytes], expected: list[bytes]) -> None:
        with make_executor() as executor:
            executor.start(WorkerSpec(ContractItem))
            assert executor.submit(blobs[2]).result(timeout=120) == expected[2]
        with pytest.raises(RuntimeError):
            executor.submit(blobs[2])
