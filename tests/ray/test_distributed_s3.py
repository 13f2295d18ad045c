"""Distributed mode with object storage: a real S3 API (moto in server mode, on loopback)
and the session's local Ray. The actors read ranges of an ``s3://`` input with ranged GETs
and write their parts under a staging prefix; the driver commits each S3 output as one
multipart upload whose parts the actors make. Outputs byte-equal to an inline run of the
same local file, no record byte through the driver, and nothing left behind: no staging
object, no pending upload, nothing under a final key after a failed run."""

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
from tests.helpers import dlq_data_without_run_fields, run_to_jsonl
from tests.ray.ray_models import FailRun, Item, Slow, ctrl_c_after_ranges, write_messy_csv
from tests.s3_server import get, keys, pending_uploads, put

ROWS = 3000


@pytest.fixture(scope="module")
def inline_run(messy, tmp_path_factory):
    return run_to_jsonl(tmp_path_factory.mktemp("inline"), "inline", fs.CSVSource(messy[0]), Item, "inline", chunk_bytes="16KiB")


def _dlq(data: bytes) -> list[dict]:
    """DLQ records without the fields that differ between runs and places (run_id, ts, source)."""
    return dlq_data_without_run_fields(data, also=("source",))


def _without_source(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "source"} for r in records]


def _run(source, sink, errors, executor, **kwargs):
    report = fs.Pipeline(source, Item, sink, errors, executor=executor, **kwargs).run()
    assert report.balanced, report.to_dict()
    return report


def test_s3_csv_in_jsonl_and_dlq_out_equal_an_inline_run(ray_session, messy, inline_run, s3, s3_bucket):
    path, counts = messy
    url = put(s3, s3_bucket, "in/items.csv", path.read_bytes())
    options = s3.storage_options()
    out, dlq = f"s3://{s3_bucket}/out/items.jsonl", f"s3://{s3_bucket}/out/items.errors.jsonl"
    report = _run(fs.CSVSource(url, storage_options=options), fs.JSONLSink(out, storage_options=options),
                  fs.JSONLSink(dlq, storage_options=options), RayExecutor(num_actors=2, distributed=True, range_bytes="8KiB"),
                  max_bytes_in_flight="32KiB", chunk_bytes="8KiB")
    ref_report, ref_out, ref_dlq = inline_run
    assert get(s3, s3_bucket, "out/items.jsonl") == ref_out
    remote_dlq = get(s3, s3_bucket, "out/items.errors.jsonl")
    assert _dlq(remote_dlq) == _without_source(ref_dlq) != []  # record numbers and lines global and exact
    assert {json.loads(line)["source"] for line in remote_dlq.splitlines()} == {url}
    assert report.bytes_through_driver == 0 and report.chunks > 10
    assert (report.rows_read, report.rows_valid, report.invalid_by_stage) == (ROWS, counts["valid"], ref_report.invalid_by_stage)
    assert any(note.startswith("distributed mode:") for note in report.notes)
    assert keys(s3, s3_bucket) == ["in/items.csv", "out/items.errors.jsonl", "out/items.jsonl"]  # the staging prefixes are gone
    assert pending_uploads(s3, s3_bucket) == []


def test_mixed_s3_in_local_out_and_local_in_s3_csv_out(ray_session, messy, inline_run, s3, s3_bucket, tmp_path):
    path, _ = messy
    options = s3.storage_options()
    url = put(s3, s3_bucket, "in/items.csv", path.read_bytes())
    # S3 source, local sink and DLQ (one machine: every node sees tmp_path).
    report, out, dlq = run_to_jsonl(tmp_path, "local", fs.CSVSource(url, storage_options=options), Item,
                                    RayExecutor(num_actors=2, distributed=True, range_bytes="16KiB"))
    assert out == inline_run[1] and _without_source(dlq) == _without_source(inline_run[2])
    assert report.bytes_through_driver == 0 and sorted(os.listdir(tmp_path)) == ["local.errors.jsonl", "local.jsonl"]
    # Local source, S3 CSV sink (its header goes with the first upload part) and DLQ.
    _run(fs.CSVSource(path), fs.CSVSink(tmp_path / "inline.csv"), fs.JSONLSink(tmp_path / "inline.errors.jsonl"), "inline")
    report = _run(fs.CSVSource(path), fs.CSVSink(f"s3://{s3_bucket}/o.csv", storage_options=options),
                  fs.JSONLSink(f"s3://{s3_bucket}/o.errors.jsonl", storage_options=options),
                  RayExecutor(num_actors=2, distributed=True, range_bytes="16KiB"))
    assert report.bytes_through_driver == 0
    assert get(s3, s3_bucket, "o.csv") == (tmp_path / "inline.csv").read_bytes()
    assert _dlq(get(s3, s3_bucket, "o.errors.jsonl")) == _dlq((tmp_path / "inline.errors.jsonl").read_bytes())
    assert keys(s3, s3_bucket) == ["in/items.csv", "o.csv", "o.errors.jsonl"] and pending_uploads(s3, s3_bucket) == []


def test_s3_enforces_the_5_mib_part_minimum(s3, s3_bucket):
    """What makes the next test mean something: this server refuses a small non-last part."""
    client = s3.client()
    upload = client.create_multipart_upload(Bucket=s3_bucket, Key="small.bin")["UploadId"]
    parts = [{"PartNumber": n, "ETag": client.upload_part(Bucket=s3_bucket, Key="small.bin", UploadId=upload, PartNumber=n, Body=b"x")["ETag"]}
             for n in (1, 2)]
    with pytest.raises(Exception, match="EntityTooSmall"):
        client.complete_multipart_upload(Bucket=s3_bucket, Key="small.bin", UploadId=upload, MultipartUpload={"Parts": parts})
    client.abort_multipart_upload(Bucket=s3_bucket, Key="small.bin", UploadId=upload)


def test_an_output_over_5_mib_is_committed_in_several_upload_parts(ray_session, s3, s3_bucket, tmp_path):
    """~9 MiB of wide rows in 1 MiB ranges: an actor joins runs of staged parts into
    upload parts of >= 5 MiB (the server refuses smaller ones but the last, see above). The
    DLQ's small parts (about one per range) become one upload part. (A staged part of
    5 MiB or more is copied server-side instead: tests/integration/test_remote_storage.py.)"""
    path = tmp_path / "wide.jsonl"
    note = "n" * 1000
    with open(path, "w", encoding="utf-8") as f:
        for i in range(1, 9_001):
            f.write(json.dumps({"id": i if i % 1000 else -i, "name": f"item {i}", "price": "1.50", "note": note}) + "\n")
    options = s3.storage_options()
    url = put(s3, s3_bucket, "in/wide.jsonl", path.read_bytes())
    _run(fs.JSONLSource(path), fs.JSONLSink(tmp_path / "inline.jsonl"), fs.JSONLSink(tmp_path / "inline.errors.jsonl"), "inline")
    report = _run(fs.JSONLSource(url, storage_options=options), fs.JSONLSink(f"s3://{s3_bucket}/o.jsonl", storage_options=options),
                  fs.JSONLSink(f"s3://{s3_bucket}/o.errors.jsonl", storage_options=options),
                  RayExecutor(num_actors=2, distributed=True, range_bytes="1MiB"), max_bytes_in_flight="16MiB")
    assert report.bytes_through_driver == 0 and report.rows_invalid == 9
    expected = (tmp_path / "inline.jsonl").read_bytes()
    assert len(expected) > 8 << 20 and get(s3, s3_bucket, "o.jsonl") == expected
    assert _dlq(get(s3, s3_bucket, "o.errors.jsonl")) == _dlq((tmp_path / "inline.errors.jsonl").read_bytes())
    # How the commit went, from the run's notes and from the server (a multipart object's
    # ETag ends in "-<parts>").
    notes = {note.split(": ", 1)[0]: note for note in report.notes if "multipart upload" in note}
    assert notes[f"s3://{s3_bucket}/o.jsonl"].endswith("committed as a multipart upload of 2 parts (0 copied server-side)")
    assert notes[f"s3://{s3_bucket}/o.errors.jsonl"].endswith("committed as a multipart upload of 1 parts (0 copied server-side)")
    client = s3.client()
    assert client.head_object(Bucket=s3_bucket, Key="o.jsonl")["ETag"].strip('"').endswith("-2")
    assert client.head_object(Bucket=s3_bucket, Key="o.errors.jsonl")["ETag"].strip('"').endswith("-1")
    assert keys(s3, s3_bucket) == ["in/wide.jsonl", "o.errors.jsonl", "o.jsonl"] and pending_uploads(s3, s3_bucket) == []


def test_a_failed_run_leaves_nothing_in_the_bucket(ray_session, s3, s3_bucket, tmp_path):
    path = tmp_path / "in.csv"
    write_messy_csv(path, 600, poison=500)  # record 500 is named POISON: the hook fails the run there
    options = s3.storage_options()
    url = put(s3, s3_bucket, "in.csv", path.read_bytes())
    pipeline = fs.Pipeline(fs.CSVSource(url, storage_options=options), Item, fs.JSONLSink(f"s3://{s3_bucket}/out/o.jsonl", storage_options=options),
                           fs.JSONLSink(f"s3://{s3_bucket}/out/o.errors.jsonl", storage_options=options),
                           executor=RayExecutor(num_actors=2, distributed=True, range_bytes="2KiB"), hooks=[FailRun("POISON")])
    with pytest.raises(fs.FlowSchemaError, match="GeneratorExit"):
        pipeline.run()
    assert keys(s3, s3_bucket) == ["in.csv"] and pending_uploads(s3, s3_bucket) == []  # no output, no part, no staging
    # A bucket that refuses the DLQ (it does not exist): the run fails before any work, with the URL named.
    pipeline = fs.Pipeline(fs.CSVSource(url, storage_options=options), Item, fs.JSONLSink(f"s3://{s3_bucket}/out/o.jsonl", storage_options=options),
                           fs.JSONLSink(f"s3://{s3_bucket}-missing/o.errors.jsonl", storage_options=options),
                           executor=RayExecutor(num_actors=1, distributed=True))
    with pytest.raises(fs.SinkError, match=f"s3://{s3_bucket}-missing/o.errors.jsonl"):
        pipeline.run()
    assert keys(s3, s3_bucket) == ["in.csv"] and pending_uploads(s3, s3_bucket) == []


def test_a_part_that_lands_after_a_failed_runs_clean_up_is_removed_too(ray_session, s3, s3_bucket, tmp_path):
    """An actor killed while its PUT was on the wire: the store may finish that request
    after the driver removed the staging prefix (a CI run saw such a part left). Here a part
    lands right after the removal, as that PUT would; the failed run removes it as well."""
    path = tmp_path / "in.csv"
    write_messy_csv(path, 600, poison=500)
    options = s3.storage_options()
    url = put(s3, s3_bucket, "in.csv", path.read_bytes())
    late: list[str] = []

    def land_late():
        deadline, seen = time.monotonic() + 120, None
        while time.monotonic() < deadline:
            staged = [key for key in keys(s3, s3_bucket) if ".staging/" in key]
            parts = [key for key in staged if key.endswith(".part")]
            if parts:
                seen = parts[0]
            elif seen is not None and not staged:  # removed: the late PUT lands now
                late.append(seen.rsplit("/", 1)[0] + "/late-0.part")
                put(s3, s3_bucket, late[0], b"late\n")
                return
            time.sleep(0.02)

    thread = threading.Thread(target=land_late, daemon=True)
    thread.start()
    pipeline = fs.Pipeline(fs.CSVSource(url, storage_options=options), Item, fs.JSONLSink(f"s3://{s3_bucket}/out/o.jsonl", storage_options=options),
                           fs.JSONLSink(f"s3://{s3_bucket}/out/o.errors.jsonl", storage_options=options),
                           executor=RayExecutor(num_actors=2, distributed=True, range_bytes="2KiB"), hooks=[FailRun("POISON"), Slow(0.002)])
    with pytest.raises(fs.FlowSchemaError, match="GeneratorExit"):
        pipeline.run()
    thread.join()
    assert late and keys(s3, s3_bucket) == ["in.csv"]


def _commit_losing_a_staged_part(monkeypatch, s3, s3_bucket, source, *, index, sink_only=False):
    """Run to the commit with a staged part removed right after the driver lists its
    staging prefix (as a lifecycle rule or another process might): the ``index``-th part of
    each listed prefix, or of the sink's only. The commit fails with a SinkError."""
    from flowschema_core import range_io

    options = s3.storage_options()
    listed = range_io.part_sizes

    def list_then_lose_one(staging):
        sizes = listed(staging)
        if not sink_only or "errors.jsonl" not in str(staging):
            victim = sorted(name for name in sizes if name.endswith(".part"))[index]
            s3.client().delete_object(Bucket=s3_bucket, Key=staging.join(victim).location.split("/", 3)[3])
        return sizes

    monkeypatch.setattr(range_io, "part_sizes", list_then_lose_one)
    pipeline = fs.Pipeline(fs.CSVSource(source, storage_options=options), Item, fs.JSONLSink(f"s3://{s3_bucket}/o.jsonl", storage_options=options),
                           fs.JSONLSink(f"s3://{s3_bucket}/o.errors.jsonl", storage_options=options),
                           executor=RayExecutor(num_actors=2, distributed=True, range_bytes="16KiB"))
    with pytest.raises(fs.SinkError, match=r"cannot read the parts under .*not found"):
        pipeline.run()


def test_a_commit_that_fails_aborts_its_upload(ray_session, messy, s3, s3_bucket, monkeypatch):
    """A staged part vanishes between the driver's listing and the actors' upload: the
    actor's read fails, the driver aborts the multipart upload and removes the staging, and
    nothing appears anywhere."""
    url = put(s3, s3_bucket, "in.csv", messy[0].read_bytes())
    _commit_losing_a_staged_part(monkeypatch, s3, s3_bucket, url, index=1)
    assert keys(s3, s3_bucket) == ["in.csv"] and pending_uploads(s3, s3_bucket) == []


def test_an_upload_that_fails_leaves_the_other_output_unpublished(ray_session, messy, s3, s3_bucket, monkeypatch):
    """Both uploads get all their parts before either is completed: the sink's failing
    (a staged part lost after its listing) aborts the DLQ's upload too, made first, so the
    bucket holds neither (completing each upload as soon as it had its parts left the DLQ)."""
    url = put(s3, s3_bucket, "in.csv", messy[0].read_bytes())
    _commit_losing_a_staged_part(monkeypatch, s3, s3_bucket, url, index=0, sink_only=True)
    assert keys(s3, s3_bucket) == ["in.csv"] and pending_uploads(s3, s3_bucket) == []


def test_sigkilled_actor_mid_range_with_s3_in_and_out_redoes_it_exactly(ray_session, messy, inline_run, s3, s3_bucket):
    options = s3.storage_options()
    url = put(s3, s3_bucket, "in/items.csv", messy[0].read_bytes())
    executor = RayExecutor(num_actors=2, distributed=True, range_bytes="16KiB")
    killed: list[int] = []

    def killer():
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            pids = executor.worker_pids()
            # Once the first sink part is up, both actors are inside ranges (~0.4 s each at ~1 ms a record).
            if len(pids) == 2 and any(key.startswith(".o.jsonl.") and key.endswith(".part") for key in keys(s3, s3_bucket)):
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    report = _run(fs.CSVSource(url, storage_options=options), fs.JSONLSink(f"s3://{s3_bucket}/o.jsonl", storage_options=options),
                  fs.JSONLSink(f"s3://{s3_bucket}/o.errors.jsonl", storage_options=options), executor, hooks=[Slow(0.001)])
    thread.join()
    assert killed and report.worker_restarts >= 1
    assert get(s3, s3_bucket, "o.jsonl") == inline_run[1]
    assert _dlq(get(s3, s3_bucket, "o.errors.jsonl")) == _without_source(inline_run[2])
    assert report.rows_read == ROWS and report.bytes_through_driver == 0
    assert keys(s3, s3_bucket) == ["in/items.csv", "o.errors.jsonl", "o.jsonl"] and pending_uploads(s3, s3_bucket) == []


def test_other_stores_run_in_the_single_driver_mode_or_are_refused(ray_session, messy, tmp_path):
    from flowschema_ray.distributed import unsupported

    def why(source=None, sink=None):
        return unsupported(fs.Pipeline(source or fs.CSVSource(messy[0]), Item, sink or fs.JSONLSink(tmp_path / "o.jsonl"),
                                       fs.JSONLSink(tmp_path / "e.jsonl"), executor="inline"))

    assert why(source=fs.CSVSource("s3://bucket/in.csv")) is None
    assert why(sink=fs.JSONLSink("s3://bucket/o.jsonl")) is None
    assert "gs:// URL; distributed mode reads local files and s3:// objects only" in why(source=fs.CSVSource("gs://bucket/in.csv"))
    assert "https:// URL" in why(source=fs.CSVSource("https://example.com/in.csv"))
    assert "az:// URL; distributed mode writes" in why(sink=fs.JSONLSink("az://container/o.jsonl"))
    pipeline = fs.Pipeline(fs.CSVSource(messy[0]), Item, fs.JSONLSink("gs://bucket/o.jsonl"),
                           executor=RayExecutor(num_actors=1, distributed=True))
    with pytest.raises(fs.ConfigError, match=r"distributed=True: .*gs:// URL"):
        pipeline.run()


def test_an_input_object_overwritten_during_the_run_is_refused_before_the_commit(ray_session, messy, s3, s3_bucket, monkeypatch):
    """Each range is one GET of the object as it is then: an object overwritten mid-run
    would give a mix of two versions. Its version after the last range must be the one
    seen before planning, or nothing is written. (The overwrite lands just after the
    ranges are processed: the latest moment, and no race with the run.)"""
    from flowschema_ray.distributed import DistributedRun

    path, _ = messy
    options = s3.storage_options()
    url = put(s3, s3_bucket, "in/live.csv", path.read_bytes())
    processed = DistributedRun._process

    def process_then_overwrite(self, desc, ranges):
        processed(self, desc, ranges)
        put(s3, s3_bucket, "in/live.csv", path.read_bytes().replace(b"item", b"ITEM"))  # same size, new content

    monkeypatch.setattr(DistributedRun, "_process", process_then_overwrite)
    out = f"s3://{s3_bucket}/out/live.jsonl"
    with pytest.raises(fs.SourceError, match="changed while the run was reading it"):
        _run(fs.CSVSource(url, storage_options=options), fs.JSONLSink(out, storage_options=options),
             fs.JSONLSink(f"s3://{s3_bucket}/out/live.errors.jsonl", storage_options=options),
             RayExecutor(num_actors=2, distributed=True, range_bytes="8KiB"), chunk_bytes="8KiB")
    assert keys(s3, s3_bucket) == ["in/live.csv"] and pending_uploads(s3, s3_bucket) == []


def test_a_checkpointed_s3_run_stopped_midway_resumes_by_its_committed_ranges(ray_session, messy, inline_run, s3, s3_bucket, tmp_path):
    """S3 in and out with checkpoint=: the staging prefixes get stable names, so a run
    stopped by Ctrl-C keeps its parts in the bucket and the resume redoes only the other
    ranges; the state on disk holds no storage option (the credentials)."""
    options = s3.storage_options()
    url = put(s3, s3_bucket, "in/items.csv", messy[0].read_bytes())
    checkpoint, state = tmp_path / "ckpt", tmp_path / "ckpt" / "state.json"

    def pipeline(hooks):
        return fs.Pipeline(fs.CSVSource(url, storage_options=options), Item,
                           fs.JSONLSink(f"s3://{s3_bucket}/out/items.jsonl", storage_options=options),
                           fs.JSONLSink(f"s3://{s3_bucket}/out/items.errors.jsonl", storage_options=options), hooks=hooks,
                           chunk_bytes="8KiB", checkpoint=checkpoint, checkpoint_interval=0,
                           executor=RayExecutor(num_actors=2, distributed=True, range_bytes="8KiB"))

    stopper = ctrl_c_after_ranges(state, 2)
    first = pipeline([Slow(0.002)]).run()
    stopper.join()
    assert first.interrupted
    staged = [key for key in keys(s3, s3_bucket) if key.startswith("out/")]
    assert staged and all(".staging/" in key for key in staged)  # parts kept, nothing under a final name
    assert options["secret"] not in state.read_text() and options["key"] not in state.read_text()
    report = pipeline([Slow(0.002)]).run()  # the same hooks: they are part of the checkpoint's fingerprint
    _, ref_out, ref_dlq = inline_run
    assert get(s3, s3_bucket, "out/items.jsonl") == ref_out
    assert _dlq(get(s3, s3_bucket, "out/items.errors.jsonl")) == _without_source(ref_dlq)
    assert report.rows_read == ROWS and 2 <= report.ranges_from_checkpoint < report.chunks
    assert keys(s3, s3_bucket) == ["in/items.csv", "out/items.errors.jsonl", "out/items.jsonl"] and pending_uploads(s3, s3_bucket) == []
    assert pipeline([Slow(0.002)]).run().rows_read == ROWS  # done: the report again, nothing written
    assert keys(s3, s3_bucket) == ["in/items.csv", "out/items.errors.jsonl", "out/items.jsonl"]
