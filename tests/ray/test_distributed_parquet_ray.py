"""Distributed mode on Parquet input, on the session's local Ray: actors read the footers
and their own row groups and write their own parts; outputs byte-equal to an inline run,
DLQ record numbers global and exact, and no record byte crosses the driver."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import flowschema_core as fs
from flowschema_ray import RayExecutor
from tests.helpers import run_to_jsonl, write_messy_parquet
from tests.integration.pipeline_models import DropEven, Item, Poison, Slow

pytest.importorskip("ray", reason="ray is not installed: pip install 'flowschema[ray]' to run the Ray tests")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ROWS = 2000


@pytest.fixture(scope="module")
def messy_parquet(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "items.parquet"
    return path, write_messy_parquet(path, ROWS, row_group_size=150)


@pytest.fixture(scope="module")
def inline_run(messy_parquet, tmp_path_factory):
    return run_to_jsonl(tmp_path_factory.mktemp("inline"), "inline", fs.ParquetSource(messy_parquet[0]), Item, fs.InlineExecutor(),
                        hooks=[DropEven()])


def test_row_groups_give_the_inline_output_and_no_record_crosses_the_driver(ray_session, messy_parquet, inline_run, tmp_path,
                                                                           monkeypatch):
    path, bad = messy_parquet

    def not_here(*args, **kwargs):
        raise AssertionError("the driver opened a Parquet file")

    monkeypatch.setattr(pq, "ParquetFile", not_here)  # in this process only: the actors read footers and row groups
    executor = RayExecutor(num_actors=2, distributed=True, range_bytes="4KiB")
    report, out, dlq = run_to_jsonl(tmp_path, "dist", fs.ParquetSource(path), Item, executor, hooks=[DropEven()],
                                    max_bytes_in_flight="16KiB", chunk_bytes="4KiB")
    ref_report, ref_out, ref_dlq = inline_run
    assert out == ref_out
    assert dlq == ref_dlq and [r["record"] for r in dlq] == bad  # global and exact
    assert report.bytes_through_driver == 0 and ref_report.bytes_through_driver > 0
    assert (report.rows_read, report.rows_valid, report.rows_filtered, report.invalid_by_stage) == (
        ROWS, ref_report.rows_valid, ref_report.rows_filtered, ref_report.invalid_by_stage)
    assert report.balanced and report.rows_filtered > 0
    assert report.chunks >= 5 and report.peak_bytes_in_flight <= 16 * 1024  # units of a few row groups, within the budget
    assert any(note.startswith("distributed mode:") for note in report.notes)
    assert sorted(os.listdir(tmp_path)) == ["dist.errors.jsonl", "dist.jsonl"]  # no staging left behind


def test_a_directory_whose_row_group_is_over_max_record_bytes_and_a_csv_sink(ray_session, tmp_path):
    data = tmp_path / "data"
    schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("price", pa.string())])
    for k in range(2):
        (data / f"part={k}").mkdir(parents=True)
        with pq.ParquetWriter(data / f"part={k}" / "f.parquet", schema) as writer:
            writer.write_table(pa.table({"id": [10 * k + 1, None], "name": ["a", "b"], "price": ["1.50", "2"]}, schema=schema))
            if k == 1:  # rows of ~40 KB: over max_record_bytes, never decompressed, each to the DLQ
                writer.write_table(pa.table({"id": [7, 8], "name": ["x" * 40_000, "y" * 40_000], "price": ["1", "1"]}, schema=schema))
            writer.write_table(pa.table({"id": [10 * k + 3], "name": ["c"], "price": ["x"]}, schema=schema))
    outputs = {}
    for name, executor in (("single", "inline"), ("dist", RayExecutor(num_actors=2, distributed=True, range_bytes="1KiB"))):
        sink, errors = tmp_path / f"{name}.csv", tmp_path / f"{name}.errors.jsonl"
        report = fs.Pipeline(fs.ParquetSource(data, max_record_bytes="10KB"), Item, fs.CSVSink(sink), fs.JSONLSink(errors),
                             executor=executor, run_id="r").run()
        outputs[name] = report, sink.read_bytes(), [line.split(b', "ts": ')[0] for line in errors.read_bytes().splitlines()]
    (single, s_out, s_dlq), (dist, d_out, d_dlq) = outputs["single"], outputs["dist"]
    assert d_out == s_out and d_dlq == s_dlq
    assert dist.invalid_by_stage == single.invalid_by_stage == {"validate": 4, "parse": 2}
    assert b'"record": 6, "line": null, "stage": "parse"' in d_dlq[3] and b"row group 1 of" in d_dlq[3]
    assert dist.bytes_through_driver == 0 and dist.rows_read == 8 and dist.balanced


def test_sigkilled_actor_mid_unit_redoes_it_exactly(ray_session, messy_parquet, inline_run, tmp_path):
    executor = RayExecutor(num_actors=2, distributed=True, range_bytes="8KiB")
    killed: list[int] = []

    def killer():
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            pids = executor.worker_pids()
            if len(pids) == 2:
                time.sleep(0.5)  # mid-run: each actor is inside a unit (~2 ms a record, ~2 s of work each)
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    report, out, dlq = run_to_jsonl(tmp_path, "kill", fs.ParquetSource(messy_parquet[0]), Item, executor, hooks=[DropEven(), Slow(0.002)])
    thread.join()
    assert killed and report.worker_restarts >= 1
    assert out == inline_run[1] and dlq == inline_run[2]
    assert report.rows_read == ROWS and report.bytes_through_driver == 0


def test_a_row_that_kills_every_actor_is_narrowed_down_to_the_dlq(ray_session, tmp_path):
    path = tmp_path / "items.parquet"
    bad = write_messy_parquet(path, 40, row_group_size=2, poison=30)  # its unit: one group of 2 rows, cut at row 1
    executor = RayExecutor(num_actors=2, distributed=True, range_bytes="1", max_attempts=1)
    report, _, dlq = run_to_jsonl(tmp_path, "poison", fs.ParquetSource(path), Item, executor, hooks=[Poison()])
    assert [r["record"] for r in dlq] == sorted([*bad, 30])
    [crash] = [r for r in dlq if r["stage"] == "worker"]
    assert crash["raw"]["name"] == "poison-x" and crash["line"] is None
    assert report.rows_valid == 40 - len(bad) - 1 and report.bytes_through_driver == 0
    assert report.worker_restarts >= 2  # the unit, then its half with the row


def test_what_qualifies_for_distributed_mode_on_parquet(tmp_path):
    from flowschema_ray.distributed import unsupported

    path = tmp_path / "in.parquet"
    write_messy_parquet(path, 3, row_group_size=2)

    def why(source, sink=None):
        return unsupported(fs.Pipeline(source, Item, sink or fs.JSONLSink(tmp_path / "o.jsonl"), executor="inline"))

    assert why(fs.ParquetSource(path)) is None
    assert why(fs.ParquetSource(tmp_path)) is None  # a directory of files
    assert why(fs.ParquetSource(path), fs.CSVSink(tmp_path / "o.csv")) is None
    assert "not a glob pattern" in why(fs.ParquetSource(tmp_path / "*.parquet"))
    assert "not a glob pattern" in why(fs.ParquetSource(tmp_path / "missing.parquet"))
    assert "ParquetSink" in why(fs.ParquetSource(path), fs.ParquetSink(tmp_path / "o.parquet"))
    assert why(fs.ParquetSource("s3://bucket/data/")) is None  # tests/ray/test_distributed_parquet_s3.py
    assert "not a glob pattern" in why(fs.ParquetSource("s3://bucket/data/*.parquet"))
