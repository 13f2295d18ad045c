"""Records that would blow memory: refused into the DLQ, everything else processed."""

from __future__ import annotations

import json

import flowschema_core as fs
from tests.integration.pipeline_models import Hog, Item


def test_worker_memory_limit_sends_the_hungry_record_to_the_dlq(tmp_path):
    src = tmp_path / "items.csv"
    rows = [f"{i},{'hog' if i == 321 else f'item {i}'},{i}.5," for i in range(1, 1001)]
    src.write_text("id,name,price,note\n" + "\n".join(rows) + "\n")
    executor = fs.MultiprocessingExecutor(workers=2, worker_memory_limit="1GiB")
    report = fs.Pipeline(fs.CSVSource(src), Item, fs.JSONLSink(tmp_path / "o.jsonl"), fs.JSONLSink(tmp_path / "e.jsonl"),
                         executor=executor, chunk_bytes="4KiB", hooks=[Hog(4)]).run()
    assert report.rows_read == 1000 and report.rows_valid == 999
    [dlq] = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert dlq["stage"] == "worker" and dlq["record"] == 321
    assert "memory limit" in dlq["errors"][0]["msg"]
    assert report.worker_restarts == 0  # refused without a crash


def test_reader_refuses_giant_records_without_holding_them(tmp_path):
    src = tmp_path / "giant.csv"
    with open(src, "w") as f:
        f.write("id,name,price,note\n1,a,1,\n")
        f.write('2,"' + "y" * 5_000_000 + '",2,\n')
        f.write("3,c,3,\n")
    jsonl = tmp_path / "giant.jsonl"
    jsonl.write_text('{"id": 1, "name": "a", "price": 1}\n{"id": 2, "name": "' + "y" * 5_000_000 + '", "price": 2}\n{"id": 3, "name": "c", "price": 3}\n')
    for source, line in ((fs.CSVSource(src, max_record_bytes="1MiB"), 3), (fs.JSONLSource(jsonl, max_record_bytes="1MiB"), 2)):
        report = fs.Pipeline(source, Item, fs.JSONLSink(tmp_path / "o.jsonl"), fs.JSONLSink(tmp_path / "e.jsonl"),
                             executor="inline", chunk_bytes="64KiB").run()
        assert (report.rows_read, report.rows_valid, report.invalid_by_stage) == (3, 2, {"parse": 1})
        assert report.peak_bytes_in_flight < 1 << 20  # the 5 MB record never travelled
        [dlq] = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
        assert dlq["record"] == 2 and dlq["line"] == line
        assert "larger than max_record_bytes=1,048,576" in dlq["errors"][0]["msg"]
        assert len(dlq["raw_text"]) < 2000


def test_inline_a_record_that_cannot_get_its_memory_goes_to_the_dlq(tmp_path):
    # A petabyte allocation fails at once with a real MemoryError in the driver's own
    # process; it once escaped Pipeline.run bare. Now it is isolated like a worker crash.
    src = tmp_path / "items.csv"
    rows = [f"{i},{'hog' if i == 77 else f'item {i}'},{i}.5," for i in range(1, 201)]
    src.write_text("id,name,price,note\n" + "\n".join(rows) + "\n")
    report = fs.Pipeline(fs.CSVSource(src), Item, fs.JSONLSink(tmp_path / "o.jsonl"), fs.JSONLSink(tmp_path / "e.jsonl"),
                         executor="inline", chunk_bytes="1KiB", hooks=[Hog(1 << 20)]).run()
    assert report.rows_read == 200 and report.rows_valid == 199
    [dlq] = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert (dlq["stage"], dlq["record"]) == ("worker", 77)
    assert "MemoryError" in dlq["errors"][0]["msg"]
