"""The executor contract (submit → Future, order, errors with cause, shutdown) on RayExecutor."""

from __future__ import annotations

import sys
import time
from concurrent.futures import Future

import pytest

pytest.importorskip("ray", reason="ray is not installed: pip install 'flowschema[ray]' to run the Ray tests")

import flowschema_core as fs
from flowschema_core.executors.base import RemoteTraceback
from flowschema_core.worker import WorkerSpec
from flowschema_ray import RayExecutor
from tests.ray.ray_models import BrokenSetup, Item, Slow, write_messy_csv


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    path = tmp_path_factory.mktemp("contract") / "items.csv"
    write_messy_csv(path, 3000)
    return [blob for blob, _ in fs.CSVSource(path).chunks(8 * 1024)]


@pytest.fixture(scope="module")
def expected(blobs):
    inline = fs.InlineExecutor()
    inline.start(WorkerSpec(Item))
    return [inline.submit(b).result() for b in blobs]


@pytest.fixture(scope="module")
def executor(ray_session):
    # Shared by the tests that leave it running (actors take seconds to start).
    executor = RayExecutor(num_actors=2)
    executor.start(WorkerSpec(Item))
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)


def test_submit_returns_futures_resolving_to_result_blobs(executor, blobs, expected):
    future = executor.submit(blobs[0])
    assert isinstance(future, Future)
    assert future.result(timeout=60) == expected[0]
    assert executor.stats.workers == 2 and executor.parallelism == 4


def test_each_future_gets_its_own_chunk_result_in_submission_order(executor, blobs, expected):
    assert len(blobs) > 10
    futures = [executor.submit(b) for b in blobs]
    assert [f.result(timeout=60) for f in futures] == expected


def test_worker_exception_carries_the_remote_traceback_as_cause(executor, blobs, expected):
    bad = executor.submit(b"FS\x01\x00 this is not a chunk")
    with pytest.raises(fs.WorkerError) as info:
        bad.result(timeout=60)
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "CodecError" in info.value.__cause__.tb and "File \"" in info.value.__cause__.tb
    assert executor.submit(blobs[1]).result(timeout=60) == expected[1]  # the actor survived


def test_ray_kill_of_an_actor_loses_nothing(executor, blobs, expected, ray_session):
    futures = [executor.submit(b) for b in blobs]
    ray_session.kill(executor.actor_handles()[0], no_restart=True)
    assert [f.result(timeout=120) for f in futures] == expected
    assert executor.stats.restarts >= 1
    assert len(executor.actor_handles()) == 2


def test_shutdown_waits_for_submitted_chunks_and_refuses_new_ones(executor, blobs, expected):
    # Runs last among the users of the shared executor: it shuts it down.
    futures = [executor.submit(b) for b in blobs[:6]]
    executor.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == expected[:6]
    with pytest.raises(RuntimeError):
        executor.submit(blobs[0])
    executor.shutdown()  # a second shutdown is harmless


def test_shutdown_with_cancel_futures_settles_every_future(ray_session, blobs):
    executor = RayExecutor(num_actors=1)
    executor.start(WorkerSpec(Item, [Slow(0.002)]))
    futures = [executor.submit(b) for b in blobs]
    start = time.monotonic()
    executor.shutdown(wait=False, cancel_futures=True)
    assert time.monotonic() - start < 30
    assert all(f.done() for f in futures)
    assert any(f.cancelled() for f in futures)


def test_context_manager_shuts_down(ray_session, blobs, expected):
    with RayExecutor(num_actors=1) as executor:
        executor.start(WorkerSpec(Item))
        assert executor.submit(blobs[2]).result(timeout=60) == expected[2]
    assert executor.actor_handles() == []


def test_actor_that_cannot_build_the_spec_fails_start_fast(ray_session):
    executor = RayExecutor(num_actors=1, start_timeout=60)
    with pytest.raises(fs.WorkerPoolError, match="lookup table"):
        executor.start(WorkerSpec(Item, [BrokenSetup()]))


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(fs.MissingDependencyError, match=r'pip install "flowschema\[ray\]"'):
        RayExecutor().start(WorkerSpec(Item))


def test_bad_options_are_config_errors():
    with pytest.raises(fs.ConfigError):
        RayExecutor(num_actors=0)
    with pytest.raises(fs.ConfigError):
        RayExecutor(max_attempts=0)
