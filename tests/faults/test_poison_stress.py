"""A poison record under CPU load, many seeds: exactly one ``worker`` DLQ record, always.

The regression this guards: under load, a worker's death was charged to a chunk it had
already finished (its reply lost with it), so a good record ended in the DLQ beside the
poison one. Each seed moves the poison record, the chunk size and the retry budget.
The Ray half of this suite is in ``tests/ray/test_poison_stress_ray.py``.
"""

from __future__ import annotations

import random

import pytest

import flowschema_core as fs
from tests.helpers import cpu_load, run_to_jsonl
from tests.integration.pipeline_models import Item, Poison, write_items_csv

ROWS = 300
SEEDS = range(12)


@pytest.fixture(scope="module")
def loaded():
    with cpu_load():
        yield


@pytest.fixture(scope="module")
def one_core_loaded():
    # Lighter: under full load a replacement Ray actor takes ~14 s to start here.
    with cpu_load(1):
        yield


def poison_scenario(seed: int, tmp_path, executor_factory, *, rows: int = ROWS, chunk_sizes=("256B", "512B", "1KiB", "2KiB"),
                    attempts=(1, 2)) -> None:
    """Run one seed of the poison scenario and check that only the poison record is blamed."""
    rng = random.Random(seed)
    poison = rng.randint(1, rows)
    path = tmp_path / "items.csv"
    write_items_csv(path, rows, bad_every=25, poison={poison})
    chunk_bytes = rng.choice(chunk_sizes)
    max_attempts = rng.choice(attempts)
    report, out, dlq = run_to_jsonl(tmp_path, "out", fs.CSVSource(path), Item, executor_factory(max_attempts),
                                    chunk_bytes=chunk_bytes, hooks=[Poison()], sample_interval=60)
    blamed = [d["record"] for d in dlq if d["stage"] == "worker"]
    assert blamed == [poison], f"seed {seed}: chunk_bytes={chunk_bytes} max_attempts={max_attempts} blamed {blamed}"
    assert report.rows_read == rows
    assert report.invalid_by_stage["worker"] == 1
    assert f"poison-{poison}".encode() not in out


@pytest.mark.parametrize("seed", SEEDS)
def test_poison_under_load_blames_only_the_poison_record_process(seed, loaded, tmp_path):
    poison_scenario(seed, tmp_path, lambda attempts: fs.MultiprocessingExecutor(workers=2, max_attempts=attempts))
