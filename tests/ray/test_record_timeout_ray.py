"""record_timeout on Ray actors: the driver polls each busy actor's beacon (a method in a
concurrency group of its own); a record past the limit goes to the DLQ with stage
``worker``, the actor is replaced, every other record is written once."""

from __future__ import annotations

import pytest

pytest.importorskip("ray", reason="ray is not installed: pip install 'flowschema[ray]' to run the Ray tests")

import flowschema_core as fs
from flowschema_ray import RayExecutor
from tests.helpers import read_jsonl
from tests.integration import stuck_models
from tests.integration.stuck_models import Row, write_rows


@pytest.fixture(params=[False, True], ids=["single-driver", "distributed"])
def distributed(request):
    return request.param


def _run(tmp_path, names, rows, distributed, timeout=3.0):
    src = tmp_path / "in.csv"
    write_rows(src, rows, names)
    out, dlq = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl"
    report = fs.Pipeline(fs.CSVSource(src), Row, fs.JSONLSink(out), fs.JSONLSink(dlq), hooks=[stuck_models.sleep_on_hang],
                         chunk_bytes="2KiB", executor=RayExecutor(num_actors=2, distributed=distributed, range_bytes="2KiB"),
                         record_timeout=timeout).run()
    assert (report.bytes_through_driver == 0) == distributed
    return report, read_jsonl(out), read_jsonl(dlq)


def test_a_stuck_record_is_found_exactly_and_the_rest_is_written_once(ray_session, tmp_path, distributed):
    stuck = {3: "hang", 400: "spin"}  # asleep (lock released), pure-Python spin (lock shared)
    report, valid, dead = _run(tmp_path, stuck, 600, distributed)
    assert report.balanced and report.rows_read == 600
    assert sorted(r["record"] for r in dead) == sorted(stuck)
    assert {(r["stage"], r["errors"][0]["type"]) for r in dead} == {("worker", "record_timeout")}
    assert [row["id"] for row in valid] == [i for i in range(1, 601) if i not in stuck]
    assert report.record_timeouts == 2 and report.retries == 0


def test_a_record_holding_the_interpreter_lock_is_isolated_by_splitting(ray_session, tmp_path):
    # The actor cannot answer the poll, so the record is not known exactly: the actor is
    # killed as if it crashed, and the chunk split until the record is alone. (Distributed
    # mode takes the same path through its crash handling; not repeated here: ~20 s.)
    report, valid, dead = _run(tmp_path, {5: "backtrack"}, 8, False, timeout=2.0)
    assert report.balanced and report.rows_read == 8
    assert [(r["record"], r["stage"]) for r in dead] == [(5, "worker")]
    assert [row["id"] for row in valid] == [1, 2, 3, 4, 6, 7, 8]
