"""Exact byte ranges (flowschema_core.ranges, range_work): cut a file anywhere, scan each
range for both quote states, combine, process each range on its own, join the parts —
and the outputs are byte for byte those of the sequential reader's run."""

from __future__ import annotations

import json
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import flowschema_core as fs
from flowschema_core import range_io, range_work
from flowschema_core.ranges import combine, nominal_ranges
from flowschema_core.worker import ChunkProcessor, WorkerSpec


class Row(BaseModel):
    id: int
    name: str


_TS = re.compile(rb'"ts": "[^"]*"')


def plan(source, range_bytes):
    desc = range_work.describe(source)
    assert desc["refused"] is None
    pieces = nominal_ranges(desc["data_start"], desc["size"], range_bytes)
    scans = [range_work.scan_result(range_work.scan(desc, s, e)) for s, e in pieces]
    return desc, combine(scans, desc["data_start"], desc["size"], desc["lines0"], desc["max_record_bytes"])


def run_in_ranges(source, sink_path, dlq_path, range_bytes, run_id="r1", model=Row, output_form="jsonl"):
    """The distributed mode's data path without Ray: every range processed on its own."""
    desc, result = plan(source, range_bytes)
    assert result.refused is None, result.refused
    processor = ChunkProcessor(WorkerSpec(model, output_form=output_form))
    staging = {"sink": range_io.make_staging(sink_path), "dlq": range_io.make_staging(dlq_path)}
    outs = [range_work.process(processor, desc, vars(r), staging, run_id, 0) for r in result.ranges]
    sink_parts = [o["sink_part"] for o in outs if o["sink_part"]]
    dlq_parts = [o["dlq_part"] for o in outs if o["dlq_part"]]
    range_io.publish(range_io.join_parts(sink_path, b"", staging["sink"], sink_parts, None), sink_path)
    range_io.publish(range_io.join_parts(dlq_path, b"", staging["dlq"], dlq_parts, None), dlq_path)
    for place in staging.values():
        range_io.remove_staging(place)
    return result, outs


def run_inline(source, sink_path, dlq_path, run_id="r1", model=Row):
    return fs.Pipeline(source, model, fs.JSONLSink(sink_path), fs.JSONLSink(dlq_path), executor="inline", run_id=run_id,
                       chunk_bytes="1KiB", max_bytes_in_flight="64KiB").run()


def same_outputs(tmp_path, make_source, range_bytes):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(exist_ok=True)
    b.mkdir(exist_ok=True)
    report = run_inline(make_source(), a / "out.jsonl", a / "dlq.jsonl")
    result, outs = run_in_ranges(make_source(), str(b / "out.jsonl"), str(b / "dlq.jsonl"), range_bytes)
    assert result.records == report.rows_read == sum(o["seen"] for o in outs)
    assert (b / "out.jsonl").read_bytes() == (a / "out.jsonl").read_bytes()
    assert _TS.sub(b"", (b / "dlq.jsonl").read_bytes()) == _TS.sub(b"", (a / "dlq.jsonl").read_bytes())
    assert sorted(os.listdir(b)) == ["dlq.jsonl", "out.jsonl"]  # no staging left behind
    return report, result


MESSY = (
    b'id,name\r\n'
    b'1,"multi\nline\nname"\r\n'
    b'2,plain\r\n'
    b'\r\n'  # a blank line: no record
    b'x,"bad id, ""quoted"""\r\n'
    b'3,"a ""quoted""\r\nfield across lines"\r\n'
    b'4,too,many\r\n'
    b'5,last'  # no newline at the end
)


@pytest.mark.parametrize("range_bytes", [1, 2, 3, 5, 7, 16, 40, 1 << 20])
def test_quoted_newlines_crlf_and_a_header_in_tiny_ranges(tmp_path, range_bytes):
    path = tmp_path / "in.csv"
    path.write_bytes(MESSY)
    report, result = same_outputs(tmp_path, lambda: fs.CSVSource(path), range_bytes)
    assert report.rows_read == 6 and report.rows_valid == 4
    # Every range starts at a record boundary, and they tile the data exactly.
    assert result.ranges[0].start == len(b"id,name\r\n")
    assert all(r.end == n.start for r, n in zip(result.ranges, result.ranges[1:]))
    assert result.ranges[-1].end == len(MESSY)


def test_a_quote_heavy_field_spanning_many_ranges(tmp_path):
    field = '""'.join(f"part {i}\nnext" for i in range(40))
    path = tmp_path / "in.csv"
    path.write_text(f'id,name\n1,"{field}"\n2,"x"\n3,y\n', encoding="utf-8")
    _, result = same_outputs(tmp_path, lambda: fs.CSVSource(path), 16)
    assert result.records == 3
    assert len(result.ranges) <= 3  # the big field is one record: its ranges merged


def test_jsonl_with_blank_lines_and_a_bom(tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": i, "name": f"n{i}"}) for i in range(20)] + ["   ", "{bad json", '{"id": "x", "name": 1}', "[1]"]
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n\n")
    for range_bytes in (3, 50, 1 << 20):
        report, _ = same_outputs(tmp_path, lambda: fs.JSONLSource(path), range_bytes)
        assert report.rows_read == 23


def test_refused_where_parity_cannot_be_trusted(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b'id,name\n1,TV 55" screen\n2,ok\n')
    _, result = plan(fs.CSVSource(path), 8)
    assert result.refused is not None and "quote inside an unquoted field" in result.refused


def test_refused_for_an_unclosed_quote_and_for_compressed_input(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b'id,name\n1,"open\n2,ok\n')
    assert "never closed" in plan(fs.CSVSource(path), 4)[1].refused
    import gzip

    gz = tmp_path / "in.csv.gz"
    gz.write_bytes(gzip.compress(b"id,name\n1,a\n"))
    assert "compressed" in range_work.describe(fs.CSVSource(gz))["refused"]


def test_refused_for_a_record_longer_than_max_record_bytes(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b"id,name\n1," + b"x" * 100 + b"\n2,y\n")
    _, result = plan(fs.CSVSource(path, max_record_bytes=50), 16)
    assert "max_record_bytes" in result.refused


_CELLS = st.sampled_from(["a", "", "1", "2", '"q,\nx"', '"a""b"', '"\r\n"', "7", '"x\n\ny"'])
_ROWS = st.lists(st.lists(_CELLS, min_size=1, max_size=3), min_size=0, max_size=12)


@settings(max_examples=60, deadline=None)
@given(rows=_ROWS, crlf=st.booleans(), blank=st.booleans(), range_bytes=st.integers(1, 40), final_newline=st.booleans())
def test_any_cut_gives_the_sequential_records(tmp_path_factory, rows, crlf, blank, range_bytes, final_newline):
    tmp_path = tmp_path_factory.mktemp("h")
    end = "\r\n" if crlf else "\n"
    body = end.join(",".join(r) for r in rows) + (end if final_newline and rows else "")
    if blank:
        body = end + body
    path = tmp_path / "in.csv"
    path.write_text("id,name" + end + body, encoding="utf-8", newline="")
    same_outputs(tmp_path, lambda: fs.CSVSource(path), range_bytes)


def test_probe_tells_what_a_node_sees(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b"id,name\n1,a\n")
    info = os.stat(path)
    assert range_work.probe(str(path), [str(tmp_path)]) == {"input": [info.st_size, info.st_mtime_ns], "directories": True}
    assert range_work.probe(str(tmp_path / "other.csv"), [str(tmp_path / "made-elsewhere")]) == {"input": None, "directories": False}
