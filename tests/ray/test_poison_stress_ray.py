"""The poison-under-load scenario of ``tests/faults/test_poison_stress.py`` on Ray actors.

A Ray actor that dies may take the reply of a call it had already finished with it, so
the executor must not charge a death to a chunk unless the chunk was alone on the actor.
Fewer seeds and smaller files than the process suite, one attempt per chunk and one
loaded core instead of two: a replacement actor takes seconds to start under load.
"""

from __future__ import annotations

import pytest

pytest.importorskip("ray", reason="ray is not installed: pip install 'flowschema[ray]' to run the Ray tests")

from flowschema_ray import RayExecutor
from tests.faults.test_poison_stress import one_core_loaded, poison_scenario  # noqa: F401 - the fixture is used by name

SEEDS = range(5)


@pytest.mark.parametrize("seed", SEEDS)
def test_poison_under_load_blames_only_the_poison_record_ray(seed, ray_session, one_core_loaded, tmp_path):  # noqa: F811
    poison_scenario(seed, tmp_path, lambda attempts: RayExecutor(num_actors=2, max_attempts=attempts),
                    rows=100, chunk_sizes=("256B",), attempts=(1,))


def test_a_finished_call_is_never_blamed_for_the_death_of_the_next(ray_session, tmp_path):
    """The race behind the flaky poison test, made likely: an actor finishes chunk A and
    dies on the first record of chunk B, so A's reply may be lost with it. A must still
    succeed; only B is blamed."""
    import flowschema_core as fs
    from flowschema_core.errors import WorkerCrashedError
    from flowschema_core.worker import WorkerSpec
    from tests.integration.pipeline_models import Item, Poison, write_items_csv

    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    write_items_csv(good, 50)
    write_items_csv(bad, 5, poison={1})
    chunk_a = next(iter(fs.CSVSource(good).chunks(1 << 20)))[0]
    chunk_b = next(iter(fs.CSVSource(bad).chunks(1 << 20)))[0]
    executor = RayExecutor(num_actors=1, max_attempts=1)
    executor.start(WorkerSpec(Item, [Poison()]))
    try:
        for _ in range(8):
            a, b = executor.submit(chunk_a), executor.submit(chunk_b)
            assert a.result(timeout=120)  # never WorkerCrashedError
            with pytest.raises(WorkerCrashedError):
                b.result(timeout=120)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
