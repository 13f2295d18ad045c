"""File sinks: temp file + rename, abort leaves nothing, odd Unicode never fails them,
and the DLQ record shape."""

from __future__ import annotations

import csv
import io
import json

import pytest
from conftest import read_jsonl
from pydantic import BaseModel

import flowschema_core as fs
from flowschema_core.sinks.jsonl import dumps_line


class Row(BaseModel):
    id: int
    name: str


SINKS = [("jsonl", fs.JSONLSink), ("csv", fs.CSVSink)]


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize(("ext", "sink_type"), SINKS)
def test_final_path_appears_only_on_commit(tmp_path, ext, sink_type):
    path = tmp_path / "out" / f"rows.{ext}"
    sink = sink_type(path)
    sink.open(["id", "name"], Row)
    sink.write_records([{"id": 1, "name": "a"}])
    assert not path.exists()
    temps = _leftovers(path.parent)
    assert len(temps) == 1 and temps[0].startswith(f".rows.{ext}.") and temps[0].endswith(".tmp")
    sink.commit()
    assert path.exists()
    assert _leftovers(path.parent) == [f"rows.{ext}"]


@pytest.mark.parametrize(("ext", "sink_type"), SINKS)
def test_abort_leaves_no_file_and_no_temp_file(tmp_path, ext, sink_type):
    path = tmp_path / f"rows.{ext}"
    sink = sink_type(path)
    sink.open(["id", "name"], Row)
    sink.write_records([{"id": 1, "name": "a"}])
    sink.abort()
    assert _leftovers(tmp_path) == []
    sink.abort()  # twice is harmless
    sink.commit()  # commit after abort writes nothing
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(("ext", "sink_type"), SINKS)
def test_abort_keeps_an_earlier_committed_file(tmp_path, ext, sink_type):
    path = tmp_path / f"rows.{ext}"
    path.write_text("previous run\n")
    sink = sink_type(path)
    sink.open(["id", "name"], Row)
    sink.write_records([{"id": 1, "name": "a"}])
    sink.abort()
    assert path.read_text() == "previous run\n"
    assert _leftovers(tmp_path) == [f"rows.{ext}"]


@pytest.mark.parametrize(("ext", "sink_type"), SINKS)
def test_write_before_open_is_a_sink_error(tmp_path, ext, sink_type):
    with pytest.raises(fs.SinkError, match="before open"):
        sink_type(tmp_path / f"x.{ext}").write_records([{"id": 1}])


def test_jsonl_sink_round_trip(tmp_path):
    path = tmp_path / "rows.jsonl"
    sink = fs.JSONLSink(path)
    sink.open(["id", "name"], Row)
    sink.write(b'{"id":1,"name":"a"}\n')
    sink.write_records([{"id": 2, "name": "é", "nested": {"x": [1, None]}}])
    sink.commit()
    assert read_jsonl(path) == [{"id": 1, "name": "a"}, {"id": 2, "name": "é", "nested": {"x": [1, None]}}]
    assert "é" in path.read_text(encoding="utf-8")  # readable UTF-8, not \\u escapes


def test_csv_sink_round_trip(tmp_path):
    path = tmp_path / "rows.csv"
    sink = fs.CSVSink(path)
    sink.open(["id", "name", "extra"], Row)
    sink.write(b'1,"a,b"\n')
    sink.write_records([{"id": 2, "name": "line\nbreak", "extra": {"k": [1]}}, {"id": 3, "name": None}])
    sink.commit()
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert rows == [["id", "name", "extra"], ["1", "a,b"], ["2", "line\nbreak", '{"k": [1]}'], ["3", "", ""]]


def test_csv_sink_other_delimiter(tmp_path):
    path = tmp_path / "rows.csv"
    sink = fs.CSVSink(path, delimiter=";")
    sink.open(["id", "name"], Row)
    sink.write(b'1,"a;b"\n2,c\n')
    sink.commit()
    assert path.read_text(encoding="utf-8") == 'id;name\n1;"a;b"\n2;c\n'


LONE = "bad \ud800 and \udfff"


def test_jsonl_sink_survives_lone_surrogates(tmp_path):
    path = tmp_path / "dlq.jsonl"
    sink = fs.JSONLSink(path)
    sink.open(fs.DLQ_FIELDS)
    sink.write_records([{"raw": {"name": LONE}, "raw_text": LONE}, {"raw": "fine é"}])
    sink.commit()
    records = read_jsonl(path)
    assert records[0] == {"raw": {"name": LONE}, "raw_text": LONE}  # \\ud800 escapes read back exactly
    assert records[1] == {"raw": "fine é"}


def test_dumps_line_is_valid_utf8_json_for_any_string():
    for value in (LONE, "\udc80\udcff", "ok", "\U0001F600"):
        line = dumps_line({"v": value})
        assert line.endswith(b"\n")
        assert json.loads(line.decode("utf-8")) == {"v": value}


def test_csv_sink_survives_lone_surrogates(tmp_path):
    path = tmp_path / "rows.csv"
    sink = fs.CSVSink(path)
    sink.open(["id", "name"], Row)
    sink.write_records([{"id": 1, "name": LONE}])
    sink.commit()
    text = path.read_bytes().decode("utf-8")  # still valid UTF-8
    assert text == "id,name\n1,bad \\ud800 and \\udfff\n"


def test_dlq_record_shape(run_pipeline, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"id": 1, "name": "a"}\n{"id": "x", "name": "b"}\nnot json\n')
    run = run_pipeline(fs.JSONLSource(path), model=Row, run_id="run-42")
    assert run.rows == [{"id": 1, "name": "a"}]
    assert [d["stage"] for d in run.dlq] == ["validate", "parse"]
    for record in run.dlq:
        assert list(record) == fs.DLQ_FIELDS
        assert record["run_id"] == "run-42" and record["source"] == str(path)
        assert record["ts"].endswith("Z")
        for error in record["errors"]:
            assert set(error) == {"type", "loc", "msg", "input"}
    validate, parse = run.dlq
    assert (validate["record"], validate["line"]) == (2, 2)
    assert validate["raw"] == {"id": "x", "name": "b"} and validate["raw_text"] is None
    assert validate["errors"][0]["type"] == "int_parsing" and validate["errors"][0]["loc"] == ["id"]
    assert validate["errors"][0]["input"] == "x"
    assert (parse["record"], parse["line"]) == (3, 3)
    assert parse["raw"] is None and parse["raw_text"] == "not json"


def test_dlq_to_csv_sink_has_dlq_columns(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"id": "x", "name": "b"}\n')
    dlq = tmp_path / "dlq.csv"
    fs.Pipeline(fs.JSONLSource(path), Row, fs.JSONLSink(tmp_path / "out.jsonl"), errors=fs.CSVSink(dlq), executor="inline").run()
    rows = list(csv.DictReader(io.StringIO(dlq.read_text(encoding="utf-8"), newline="")))
    assert list(rows[0]) == fs.DLQ_FIELDS
    assert rows[0]["stage"] == "validate" and rows[0]["record"] == "1"
    assert json.loads(rows[0]["raw"]) == {"id": "x", "name": "b"}
    assert json.loads(rows[0]["errors"])[0]["loc"] == ["id"]
