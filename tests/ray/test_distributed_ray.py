"""Distributed mode on the session's local Ray: actors read their own byte ranges and
write their own parts; outputs byte-equal to an inline run, and no record byte crosses
the driver."""

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
from tests.ray.ray_models import FailRun, Item, Slow, write_messy_csv

ROWS = 3000


@pytest.fixture(scope="module")
def inline_run(messy, tmp_path_factory):
    return run_to_jsonl(tmp_path_factory.mktemp("inline"), "inline", fs.CSVSource(messy[0]), Item, "inline", chunk_bytes="16KiB")


def _leftovers(directory):
    return [name for name in os.listdir(directory) if name.startswith(".")]


def test_messy_csv_output_equals_inline_and_no_record_crosses_the_driver(ray_session, messy, inline_run, tmp_path):
    path, counts = messy
    executor = RayExecutor(num_actors=2, distributed=True, range_bytes="8KiB")
    snapshots = []
    report, out, dlq = run_to_jsonl(tmp_path, "dist", fs.CSVSource(path), Item, executor, max_bytes_in_flight="32KiB", chunk_bytes="8KiB",
                                    progress=snapshots.append)
    ref_report, ref_out, ref_dlq = inline_run
    assert out == ref_out
    assert dlq == ref_dlq  # record numbers and lines global and exact
    assert report.bytes_through_driver == 0
    assert ref_report.bytes_through_driver > 0
    assert (report.rows_read, report.rows_valid, report.invalid_by_stage) == (ROWS, counts["valid"], ref_report.invalid_by_stage)
    assert report.chunks > 10 and report.peak_bytes_in_flight <= 32 * 1024
    assert any(note.startswith("distributed mode:") for note in report.notes)
    assert not _leftovers(tmp_path)  # staging directories and temporary files are gone
    final = snapshots[-1]  # the progress line works in this mode too
    assert final.final and final.rows_read == ROWS and final.fraction_done == 1.0


def test_the_driver_exchanges_per_range_messages_whose_size_does_not_grow_with_the_records(ray_session, tmp_path):
    """What the driver does move, measured: descriptors out, counts and part names back.
    Eight times the rows in the same number of ranges leaves it per range about the same;
    records coming back through the driver would make it eight times larger."""
    per_range = {}
    for rows in (ROWS, 8 * ROWS):
        path = tmp_path / f"in{rows}.csv"
        write_messy_csv(path, rows)
        executor = RayExecutor(num_actors=2, distributed=True, range_bytes=path.stat().st_size // 6)
        report, _, _ = run_to_jsonl(tmp_path, f"out{rows}", fs.CSVSource(path), Item, executor, chunk_bytes="64KiB")
        assert report.rows_read == rows and report.bytes_through_driver == 0 and 5 <= report.chunks <= 8
        assert report.driver_message_bytes > 0
        per_range[rows] = report.driver_message_bytes / report.chunks
    assert per_range[8 * ROWS] < 1.5 * per_range[ROWS], per_range
    assert report.driver_message_bytes < path.stat().st_size / 20  # the larger input's


def test_jsonl_to_csv_sink_equals_the_single_driver_mode(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths: the actors' working directory is not the driver's
    tmp_path = type(tmp_path)(".")
    path = tmp_path / "in.jsonl"
    rows = [{"id": i, "name": f"n{i}", "price": "1.50", "tags": "a"} for i in range(400)]
    rows[7]["price"] = "x"
    lines = [json.dumps(r) for r in rows]
    lines[100] = "{not json"
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    results = {}
    for name, executor in (("single", "inline"), ("dist", RayExecutor(num_actors=2, distributed=True, range_bytes="2KiB"))):
        sink, errors = tmp_path / f"{name}.csv", tmp_path / f"{name}.errors.jsonl"
        report = fs.Pipeline(fs.JSONLSource(path), Item, fs.CSVSink(sink), fs.JSONLSink(errors), executor=executor, run_id="r").run()
        results[name] = (report, sink.read_bytes(), [{k: v for k, v in json.loads(x).items() if k != "ts"} for x in errors.read_text().splitlines()])
    (single, s_out, s_dlq), (dist, d_out, d_dlq) = results["single"], results["dist"]
    assert d_out == s_out and d_dlq == s_dlq and len(d_dlq) >= 2
    assert (dist.rows_read, dist.rows_valid, dist.rows_invalid) == (single.rows_read, single.rows_valid, single.rows_invalid)
    assert dist.bytes_through_driver == 0


def test_explicit_distributed_refuses_what_it_cannot_do(ray_session, messy, tmp_path):
    executor = RayExecutor(num_actors=1, distributed=True)
    pipeline = fs.Pipeline(fs.CSVSource(messy[0]), Item, fs.ParquetSink(tmp_path / "o.parquet"), executor=executor)
    with pytest.raises(fs.ConfigError, match="distributed=True: the sink is a ParquetSink"):
        pipeline.run()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b'id,name,price,tags\n1,TV 55" screen,1,a\n')
    pipeline = fs.Pipeline(fs.CSVSource(bad), Item, fs.JSONLSink(tmp_path / "o.jsonl"), executor=RayExecutor(num_actors=1, distributed=True))
    with pytest.raises(fs.ConfigError, match="quote inside an unquoted field"):
        pipeline.run()
    assert not os.path.exists(tmp_path / "o.jsonl") and not _leftovers(tmp_path)


def test_auto_runs_what_it_cannot_cut_in_the_single_driver_mode(ray_session, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b'id,name,price,tags\n1,TV 55" screen,1.00,a\n2,ok,2.00,b\n')
    report, out, _ = run_to_jsonl(tmp_path, "auto", fs.CSVSource(bad), Item, RayExecutor(num_actors=1))
    assert report.rows_valid == 2 and report.bytes_through_driver > 0
    assert b'TV 55\\" screen' in out


def test_sigkilled_actor_mid_range_redoes_it_exactly(ray_session, messy, inline_run, tmp_path):
    executor = RayExecutor(num_actors=2, distributed=True, range_bytes="16KiB")
    killed: list[int] = []

    def killer():
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            pids = executor.worker_pids()
            if len(pids) == 2:
                time.sleep(0.5)  # mid-run: each actor is inside a range (~1 ms a record)
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    report, out, dlq = run_to_jsonl(tmp_path, "kill", fs.CSVSource(messy[0]), Item, executor, hooks=[Slow(0.001)])
    thread.join()
    assert killed and report.worker_restarts >= 1
    assert out == inline_run[1]
    assert dlq == inline_run[2]
    assert report.rows_read == ROWS and report.bytes_through_driver == 0


def test_a_failed_run_leaves_nothing_under_the_final_names(ray_session, tmp_path):
    path = tmp_path / "in.csv"
    write_messy_csv(path, 600, poison=500)  # record 500 is named POISON: the hook fails the run there
    sink, errors = tmp_path / "out" / "o.jsonl", tmp_path / "out" / "o.errors.jsonl"
    executor = RayExecutor(num_actors=2, distributed=True, range_bytes="2KiB")
    pipeline = fs.Pipeline(fs.CSVSource(path), Item, fs.JSONLSink(sink), fs.JSONLSink(errors), executor=executor,
                           hooks=[FailRun("POISON")], chunk_bytes="2KiB")
    with pytest.raises(fs.FlowSchemaError, match="GeneratorExit"):
        pipeline.run()
    assert os.listdir(tmp_path / "out") == []  # no output, no part, no staging directory


def test_an_output_that_cannot_be_committed_leaves_the_other_unpublished(ray_session, messy, tmp_path, monkeypatch):
    """The outputs are made whole out of sight first, then published: a sink part removed
    before its join fails the commit with a SinkError, and the DLQ, joined first, is not
    published (publishing each output as soon as it was joined left it behind)."""
    from flowschema_core import range_io

    joined = range_io.join_parts

    def join_losing_a_sink_part(final_path, head, staging, parts, mode):
        if os.path.basename(final_path) == "o.jsonl":
            os.unlink(os.path.join(range_io.place(staging).location, parts[0]))
        return joined(final_path, head, staging, parts, mode)

    monkeypatch.setattr(range_io, "join_parts", join_losing_a_sink_part)
    out = tmp_path / "out"
    out.mkdir()
    pipeline = fs.Pipeline(fs.CSVSource(messy[0]), Item, fs.JSONLSink(out / "o.jsonl"), fs.JSONLSink(out / "o.errors.jsonl"),
                           executor=RayExecutor(num_actors=2, distributed=True, range_bytes="16KiB"))
    with pytest.raises(fs.SinkError, match=r"cannot commit .*/o\.jsonl from its parts"):
        pipeline.run()
    assert os.listdir(out) == []  # no sink, no DLQ, no temporary file, no staging


def test_what_qualifies_for_distributed_mode(tmp_path):
    from flowschema_ray.distributed import unsupported

    path = tmp_path / "in.csv"
    path.write_text("id,name,price,note\n1,a,1.00,\n", encoding="utf-8")

    def why(source=None, sink=None, errors=None, **kwargs):
        sink = sink or fs.JSONLSink(tmp_path / "o.jsonl")
        kwargs.setdefault("executor", "inline")
        return unsupported(fs.Pipeline(source or fs.CSVSource(path), Item, sink, errors, **kwargs))

    assert why() is None
    assert why(sink=fs.CSVSink(tmp_path / "o.csv")) is None
    assert why(source=fs.JSONLSource(path)) is None
    assert "ParquetSink" in why(sink=fs.ParquetSink(tmp_path / "o.parquet"))
    assert "delimiter" in why(sink=fs.CSVSink(tmp_path / "o.csv", delimiter=";"))
    assert "the DLQ is a CSVSink" in why(errors=fs.CSVSink(tmp_path / "e.csv"))
    assert "not a regular file" in why(source=fs.CSVSource(tmp_path / "missing.csv"))
    assert "JSONSource" in why(source=fs.JSONSource(path))
    assert why(checkpoint=tmp_path / "ck", max_invalid=10) is None
    assert why(record_timeout=5, executor=RayExecutor(num_actors=1)) is None
    assert why(sink=fs.JSONLSink("s3://bucket/o.jsonl")) is None  # object storage: tests/ray/test_distributed_s3.py
    assert "gs:// URL" in why(source=fs.CSVSource("gs://bucket/in.csv"))
    assert why(sink=fs.JSONLSink("s3://bucket/o.jsonl"), checkpoint=tmp_path / "ck") is None  # staged under a prefix
