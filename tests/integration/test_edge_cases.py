"""Edge cases found by an independent review: each a record that must not be lost or
invented, or a clear error instead of a leak or a lie."""

from __future__ import annotations

import json
import os
import stat
import threading

import psutil
import pytest
from pydantic import BaseModel, field_validator

import flowschema_core as fs
from tests.helpers import run_to_jsonl
from tests.integration.pipeline_models import Item, write_items_csv


class Note(BaseModel):
    id: int
    text: str


def test_a_field_over_128_kib_is_one_field_not_many_records(tmp_path):
    src = tmp_path / "big.csv"
    big = "line\n" * 40_000  # a quoted field of 200 KB over 40,000 lines
    src.write_text(f'id,text\n1,"{big}"\n2,small\n')
    report, _, dlq = run_to_jsonl(tmp_path, "o", fs.CSVSource(src), Note, "inline")
    assert report.rows_read == 2 and report.rows_valid == 2 and dlq == []


def test_null_values_are_read_like_empty_cells_even_when_every_field_is_a_string(tmp_path):
    src = tmp_path / "na.csv"
    src.write_text("id,text\n1,NA\n")
    _, out, _ = run_to_jsonl(tmp_path, "o", fs.CSVSource(src, null_values=["NA"]), Note, "inline")
    assert out == b'{"id":1,"text":""}\n'


class Zeroed(BaseModel):
    qty: int

    @field_validator("qty", mode="before")
    @classmethod
    def empty_is_zero(cls, value):
        return 0 if value in ("", None) else value


def test_a_field_with_its_own_before_validator_gets_the_empty_cell(tmp_path):
    src = tmp_path / "q.csv"
    src.write_text("qty\n\n5\n".replace("qty\n\n", "qty\n\"\"\n"))
    report, out, _ = run_to_jsonl(tmp_path, "o", fs.CSVSource(src), Zeroed, "inline")
    assert report.rows_valid == 2 and out == b'{"qty":0}\n{"qty":5}\n'


def test_a_compressed_sink_name_is_refused_not_written_plain():
    from flowschema_core.registry import sink_for

    with pytest.raises(fs.ConfigError, match="compressed sink"):
        sink_for("out.jsonl.gz")


def test_a_named_pipe_is_read_like_a_file(tmp_path):
    plain = tmp_path / "items.csv"
    write_items_csv(plain, 500)
    fifo = tmp_path / "items.fifo.csv"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(plain.read_bytes()))
    writer.start()
    report, out, _ = run_to_jsonl(tmp_path, "p", fs.CSVSource(fifo), Item, "inline")
    writer.join()
    ref, ref_out, _ = run_to_jsonl(tmp_path, "r", fs.CSVSource(plain), Item, "inline")
    assert out == ref_out and report.rows_read == ref.rows_read == 500


def test_running_a_pipeline_twice(tmp_path):
    src = tmp_path / "items.csv"
    write_items_csv(src, 200)
    by_name = fs.Pipeline(fs.CSVSource(src), Item, fs.JSONLSink(tmp_path / "a.jsonl"), executor="process")
    assert by_name.run().rows_read == by_name.run().rows_read == 200  # a name gives each run its own pool

    children = set(psutil.Process().children(recursive=True))
    instance = fs.Pipeline(fs.CSVSource(src), Item, fs.JSONLSink(tmp_path / "b.jsonl"), executor=fs.MultiprocessingExecutor(workers=1))
    instance.run()
    with pytest.raises(fs.ConfigError, match="shut down by its previous run"):
        instance.run()
    leaked = [p for p in psutil.Process().children(recursive=True) if p not in children and p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert leaked == []


def test_a_read_only_input_gives_outputs_its_owner_can_write(tmp_path):
    src = tmp_path / "ro.csv"
    src.write_text("id,text\n1,a\n")
    os.chmod(src, 0o444)
    run_to_jsonl(tmp_path, "o", fs.CSVSource(src), Note, "inline")
    assert stat.S_IMODE(os.stat(tmp_path / "o.jsonl").st_mode) & 0o600 == 0o600


def test_a_jsonl_dlq_sink_that_overrides_write_records_still_gets_them(tmp_path):
    # The driver copies the DLQ lines the workers encoded into a JSONLSink; a subclass
    # that changes write_records (to redact, to route) must still be the one that writes.
    class Redacting(fs.JSONLSink):
        def write_records(self, records):
            super().write_records([{**r, "raw": "REDACTED"} for r in records])

    src = tmp_path / "items.csv"
    src.write_text("id,name,price\n1,a,1\nx,b,2\n")
    report = fs.Pipeline(fs.CSVSource(src), Item, fs.JSONLSink(tmp_path / "o.jsonl"), Redacting(tmp_path / "e.jsonl"), executor="inline").run()
    assert report.rows_invalid == 1
    [record] = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert record["raw"] == "REDACTED" and record["record"] == 2
