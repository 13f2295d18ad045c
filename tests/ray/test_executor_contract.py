"""The executor contract (:mod:`flowschema_core.testing`) on RayExecutor, and what is
Ray's own: the actor's traceback as the cause, ``ray.kill``, start-up failures."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("ray", reason="ray is not installed: pip install 'flowschema[ray]' to run the Ray tests")

import flowschema_core as fs
from flowschema_core.executors.base import RemoteTraceback
from flowschema_core.testing import ExecutorContract
from flowschema_core.worker import WorkerSpec
from flowschema_ray import RayExecutor
from tests.ray.ray_models import BrokenSetup, Item, write_messy_csv


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


class TestRayExecutor(ExecutorContract):
    @pytest.fixture
    def make_executor(self, ray_session):
        return lambda: RayExecutor(num_actors=2)


@pytest.fixture
def executor(ray_session):
    # Per test: the session's Ray has 2 CPUs, and a live pair of actors would starve the
    # tests that start their own.
    executor = RayExecutor(num_actors=2)
    executor.start(WorkerSpec(Item))
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)


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


def test_workers_is_another_name_for_num_actors():
    assert RayExecutor(workers=3).num_actors == 3
    with pytest.raises(fs.ConfigError, match="not both"):
        RayExecutor(num_actors=4, workers=3)
