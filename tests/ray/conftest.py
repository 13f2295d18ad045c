"""One local Ray for the whole test session (num_cpus=2), shared by every RayExecutor.

A RayExecutor started while Ray is initialised in the process uses that Ray and leaves it
running, so each test pays for its actors (about a second), not for ``ray.init``
(several seconds). The end-to-end test starts its own head node with ``ray start`` and
stops only that node's processes, so the two never stop each other.
"""

from __future__ import annotations

import importlib.util
import logging
import os

import pytest

HAS_RAY = importlib.util.find_spec("ray") is not None
NO_RAY = "ray is not installed: pip install 'flowschema[ray]' to run the Ray tests"


@pytest.fixture(scope="session")
def ray_session():
    if not HAS_RAY:
        pytest.skip(NO_RAY)
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(
            address="local", num_cpus=2, include_dashboard=False,
            object_store_memory=200 * 1024 * 1024, logging_level=logging.WARNING,
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def messy(request, tmp_path_factory):
    """A messy items CSV (ragged rows, bad values) of the test module's ``ROWS`` rows, and its counts."""
    from tests.ray.ray_models import write_messy_csv

    path = tmp_path_factory.mktemp("data") / "items.csv"
    return path, write_messy_csv(path, request.module.ROWS)
