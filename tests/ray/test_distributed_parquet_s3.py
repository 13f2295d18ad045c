"""Distributed mode on Parquet in object storage (a real S3 API: moto in server mode, on
loopback): the actors read the footers and their row groups with ranged GETs, the driver
opens no Parquet file; outputs equal a single-driver run of the same objects, and an
object added under the prefix during the run is refused before anything is written."""

from __future__ import annotations

import os

import pytest

import flowschema_core as fs
from flowschema_ray import RayExecutor
from tests.helpers import dlq_data_without_run_fields as _dlq
from tests.helpers import dlq_without_run_fields, write_messy_parquet
from tests.integration.pipeline_models import DropEven, Item
from tests.s3_server import get, keys, pending_uploads, put

pytest.importorskip("ray", reason="ray is not installed: pip install 'flowschema[ray]' to run the Ray tests")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ROWS = 1200


def _run(source, sink, errors, executor):
    report = fs.Pipeline(source, Item, sink, errors, executor=executor, hooks=[DropEven()], chunk_bytes="4KiB").run()
    assert report.balanced, report.to_dict()
    return report


def test_an_s3_parquet_object_in_row_groups_equals_the_single_driver_run(ray_session, s3, s3_bucket, tmp_path, monkeypatch):
    path = tmp_path / "items.parquet"
    bad = write_messy_parquet(path, ROWS, row_group_size=100)
    options = s3.storage_options()
    url = put(s3, s3_bucket, "in/items.parquet", path.read_bytes())
    single = _run(fs.ParquetSource(url, storage_options=options), fs.JSONLSink(tmp_path / "single.jsonl"),
                  fs.JSONLSink(tmp_path / "single.errors.jsonl"), "inline")

    def not_here(*args, **kwargs):
        raise AssertionError("the driver opened a Parquet file")

    monkeypatch.setattr(pq, "ParquetFile", not_here)  # in this process only: the actors read footers and row groups
    out, dlq = f"s3://{s3_bucket}/out/items.jsonl", f"s3://{s3_bucket}/out/items.errors.jsonl"
    report = _run(fs.ParquetSource(url, storage_options=options), fs.JSONLSink(out, storage_options=options),
                  fs.JSONLSink(dlq, storage_options=options), RayExecutor(num_actors=2, distributed=True, range_bytes="4KiB"))
    assert get(s3, s3_bucket, "out/items.jsonl") == (tmp_path / "single.jsonl").read_bytes()
    remote_dlq = _dlq(get(s3, s3_bucket, "out/items.errors.jsonl"))
    assert remote_dlq == dlq_without_run_fields(tmp_path / "single.errors.jsonl") and [r["record"] for r in remote_dlq] == bad
    assert (report.rows_read, report.rows_valid, report.rows_filtered) == (ROWS, single.rows_valid, single.rows_filtered)
    assert report.bytes_through_driver == 0 and report.chunks >= 5
    assert any(note.startswith("distributed mode:") for note in report.notes)
    assert keys(s3, s3_bucket) == ["in/items.parquet", "out/items.errors.jsonl", "out/items.jsonl"]
    assert pending_uploads(s3, s3_bucket) == []


def _put_dataset(s3, bucket: str, tmp_path) -> str:
    """A Hive-partitioned dataset of two files under ``s3://bucket/ds/``."""
    schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("price", pa.string())])
    for k in range(2):
        local = tmp_path / f"f{k}.parquet"
        ids = [k * 1000 + i for i in range(1, 301)]
        table = pa.table({"id": ids, "name": [None if i % 23 == 0 else f"n{i}" for i in ids],
                          "price": ["x" if i % 29 == 0 else "1.25" for i in ids]}, schema=schema)
        pq.write_table(table, local, row_group_size=60)
        put(s3, bucket, f"ds/part={k}/f.parquet", local.read_bytes())
    return f"s3://{bucket}/ds"


def test_an_s3_prefix_of_parquet_files_equals_the_single_driver_run(ray_session, s3, s3_bucket, tmp_path):
    options = s3.storage_options()
    url = _put_dataset(s3, s3_bucket, tmp_path)
    outputs = {}
    for name, executor in (("single", "inline"), ("dist", RayExecutor(num_actors=2, distributed=True, range_bytes="2KiB"))):
        report = _run(fs.ParquetSource(url, storage_options=options), fs.JSONLSink(tmp_path / f"{name}.jsonl"),
                      fs.JSONLSink(tmp_path / f"{name}.errors.jsonl"), executor)
        outputs[name] = report, (tmp_path / f"{name}.jsonl").read_bytes(), dlq_without_run_fields(tmp_path / f"{name}.errors.jsonl")
    (single, s_out, s_dlq), (dist, d_out, d_dlq) = outputs["single"], outputs["dist"]
    assert d_out == s_out and d_dlq == s_dlq != []
    assert dist.rows_read == single.rows_read == 600 and dist.bytes_through_driver == 0 and dist.chunks > 2
    assert sorted(name for name in os.listdir(tmp_path) if name.startswith(".")) == []  # no staging left


def test_an_object_added_under_the_prefix_during_the_run_is_refused(ray_session, s3, s3_bucket, tmp_path, monkeypatch):
    """The version of a prefix is that of all its objects: one added after the planning
    (it would be left out of the output, silently) fails the run before the commit."""
    from flowschema_ray.distributed import DistributedRun

    options = s3.storage_options()
    url = _put_dataset(s3, s3_bucket, tmp_path)
    processed = DistributedRun._process

    def process_then_add(self, desc, ranges):
        processed(self, desc, ranges)
        put(s3, s3_bucket, "ds/part=2/f.parquet", (tmp_path / "f0.parquet").read_bytes())

    monkeypatch.setattr(DistributedRun, "_process", process_then_add)
    with pytest.raises(fs.SourceError, match="changed while the run was reading it"):
        _run(fs.ParquetSource(url, storage_options=options), fs.JSONLSink(tmp_path / "o.jsonl"), fs.JSONLSink(tmp_path / "o.errors.jsonl"),
             RayExecutor(num_actors=2, distributed=True, range_bytes="2KiB"))
    assert sorted(os.listdir(tmp_path)) == ["f0.parquet", "f1.parquet"]  # no output, no staging


def test_outputs_written_under_the_input_prefix_are_not_a_change_of_it(ray_session, s3, s3_bucket, tmp_path):
    """The staging beside outputs that live under the dataset's prefix is hidden (".NAME…"),
    as readers of a dataset skip it: the run is not refused for its own parts."""
    options = s3.storage_options()
    url = _put_dataset(s3, s3_bucket, tmp_path)
    report = _run(fs.ParquetSource(url, storage_options=options), fs.JSONLSink(f"{url}/out.jsonl", storage_options=options),
                  fs.JSONLSink(f"{url}/out.errors.jsonl", storage_options=options),
                  RayExecutor(num_actors=2, distributed=True, range_bytes="2KiB"))
    assert report.rows_read == 600 and report.bytes_through_driver == 0
    assert [key for key in keys(s3, s3_bucket) if not key.endswith(".parquet")] == ["ds/out.errors.jsonl", "ds/out.jsonl"]
