"""The pipeline end to end on RayExecutor: exact output, actor deaths, poison records."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

pytest.importorskip("ray", reason="ray is not installed: pip install 'flowschema[ray]' to run the Ray tests")

import flowschema_core as fs
from flowschema_ray import RayExecutor
from tests.helpers import run_to_jsonl
from tests.ray.ray_models import ExitOnMarker, Item, Slow, write_messy_csv

ROWS = 6000


def _run(tmp_path, name, csv_path, executor, **kwargs):
    kwargs.setdefault("chunk_bytes", "16KiB")
    return run_to_jsonl(tmp_path, name, fs.CSVSource(csv_path), Item, executor, **kwargs)


@pytest.fixture(scope="module")
def inline_run(messy, tmp_path_factory):
    return _run(tmp_path_factory.mktemp("inline"), "inline", messy[0], "inline")


def test_executor_by_name_output_equals_inline(ray_session, messy, inline_run, tmp_path):
    path, counts = messy
    report, out, dlq = _run(tmp_path, "ray", path, "ray", max_bytes_in_flight="64KiB")
    ref_report, ref_out, ref_dlq = inline_run
    assert report.executor == "RayExecutor"
    assert out == ref_out
    assert dlq == ref_dlq
    assert report.rows_read == ROWS
    assert report.rows_valid == counts["valid"]
    assert report.invalid_by_stage == {"parse": counts["parse"], "validate": counts["validate"]} == ref_report.invalid_by_stage
    assert report.chunks > 10
    assert report.peak_bytes_in_flight <= 64 * 1024


def test_sigkilled_actors_mid_run_lose_and_duplicate_nothing(ray_session, messy, inline_run, tmp_path):
    executor = RayExecutor(num_actors=2)
    kills: list[int] = []

    def killer():
        deadline = time.monotonic() + 60
        while len(kills) < 2 and time.monotonic() < deadline:
            pids = [p for p in executor.worker_pids() if p not in kills]
            if pids:
                time.sleep(0.5)  # let it take some chunks first
                try:
                    os.kill(pids[0], signal.SIGKILL)
                    kills.append(pids[0])
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    # ~1 ms per record keeps each actor busy for a few seconds.
    report, out, dlq = _run(tmp_path, "kill", messy[0], executor, hooks=[Slow(0.001)])
    thread.join()
    assert len(kills) == 2
    assert report.worker_restarts >= 2
    assert out == inline_run[1]
    assert dlq == inline_run[2]


def test_poison_record_goes_to_dlq_with_stage_worker(ray_session, tmp_path):
    # max_attempts=1 keeps it short: each halving kills one actor instead of two (the
    # retry path is covered by the SIGKILL test above).
    path = tmp_path / "poison.csv"
    poison = 150
    counts = write_messy_csv(path, 400, poison=poison)
    report, out, dlq = _run(tmp_path, "poison", path, RayExecutor(num_actors=2, max_attempts=1), chunk_bytes="256B", hooks=[ExitOnMarker("POISON")])
    worker = [d for d in dlq if d["stage"] == "worker"]
    assert len(worker) == 1
    assert worker[0]["record"] == poison
    assert worker[0]["raw_text"] == f"{poison},POISON,1.00," or worker[0]["raw"]["name"] == "POISON"
    assert worker[0]["errors"][0]["type"] == "worker_crashed"
    assert report.rows_valid == counts["valid"] - 1
    assert report.invalid_by_stage == {"parse": counts["parse"], "validate": counts["validate"], "worker": 1}
    assert b"POISON" not in out
    ids = [json.loads(line)["id"] for line in out.splitlines()]
    assert len(ids) == len(set(ids)) == report.rows_valid
    assert report.worker_restarts >= 3  # one death per halving


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_null_policy_holds_on_ray_actors(ray_session, tmp_path, kind):
    from tests.integration.test_null_policy import test_each_row_of_the_table

    test_each_row_of_the_table(tmp_path, kind, RayExecutor(num_actors=1))


def test_results_larger_than_their_allowance_are_split_on_actors_too(ray_session, messy, tmp_path):
    from tests.integration.result_budget_models import Expand

    path, _ = messy
    _, ref_out, ref_dlq = _run(tmp_path, "inline-expand", path, "inline", max_bytes_in_flight="64MB", hooks=[Expand(20)])
    # The single-driver mode's budget (distributed mode counts ranges, not results).
    report, out, dlq = _run(tmp_path, "ray-expand", path, RayExecutor(num_actors=2, distributed=False), max_bytes_in_flight="1MiB",
                            hooks=[Expand(20)])
    assert report.result_splits > 0
    assert report.peak_bytes_in_flight <= 1 << 20
    assert (out, dlq) == (ref_out, ref_dlq)
