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
