"""Every file of Apache's parquet-testing corpus (tests/data/parquet-testing) ends in a run
whose counts balance, or in a FlowSchemaError that names the file: never a crash."""

from __future__ import annotations

import json
import pathlib

import pytest

pytest.importorskip("pyarrow")

from pydantic import BaseModel, ConfigDict

import flowschema_core as fs
from tests.helpers import read_jsonl

CORPUS = pathlib.Path(__file__).resolve().parents[1] / "data" / "parquet-testing"
FILES = sorted(CORPUS.glob("data/*.parquet")) + sorted(CORPUS.glob("bad_data/*.parquet"))


class AnyRow(BaseModel):
    """A permissive model: any columns, any values."""

    model_config = ConfigDict(extra="allow")


def _run(path, tmp_path):
    out, dlq = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl"
    report = fs.Pipeline(fs.ParquetSource(path), AnyRow, fs.JSONLSink(out), fs.JSONLSink(dlq), executor="inline", sample_interval=60).run()
    return report, out, dlq


def test_the_corpus_is_there():
    assert len(FILES) >= 70


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_file_balances_or_is_refused_by_name(path, tmp_path):
    try:
        report, out, dlq = _run(path, tmp_path)
    except fs.FlowSchemaError as exc:
        assert path.name in str(exc)
        return
    assert report.balanced
    for line in out.read_text(encoding="utf-8").splitlines() + dlq.read_text(encoding="utf-8").splitlines():
        json.loads(line)  # every output line is JSON


def test_bytes_that_are_not_utf8_reach_the_dlq_recoverably(tmp_path):
    report, _, dlq = _run(CORPUS / "data" / "binary_truncated_min_max.parquet", tmp_path)
    assert report.balanced and report.rows_invalid >= 1
    raw = json.dumps(read_jsonl(dlq)[0]["raw"])
    assert "\\\\x" in raw  # the undecodable bytes as \xNN escapes, not lost


def test_a_timestamp_beyond_python_costs_its_record_not_the_run(tmp_path):
    report, _, dlq = _run(CORPUS / "data" / "nested_structs.rust.parquet", tmp_path)
    assert report.balanced and report.invalid_by_stage == {"parse": 1}
    record = read_jsonl(dlq)[0]
    assert "cannot represent" in record["errors"][0]["msg"]
    assert "value out of range: 1608822900000000000" in record["raw_text"] and "timestamp[us" in record["raw_text"]


@pytest.mark.parametrize("dlq_name", ["dlq.jsonl", "dlq.csv"])
def test_any_file_dlq_sink_can_store_raw_bytes(tmp_path, dlq_name):
    from flowschema_core.registry import sink_for

    dlq = tmp_path / dlq_name
    report = fs.Pipeline(fs.ParquetSource(CORPUS / "data" / "binary_truncated_min_max.parquet"), AnyRow, fs.JSONLSink(tmp_path / "o.jsonl"),
                         sink_for(str(dlq)), executor="inline", sample_interval=60).run()
    assert report.balanced and report.rows_invalid >= 1
    assert "\\x" in dlq.read_text(encoding="utf-8")


def test_a_row_group_of_gigabyte_rows_is_refused_from_its_metadata_without_inflating_it(tmp_path):
    # 4 KiB on disk, 2 rows of 1 GiB each once inflated: read, it took 84 s and 4.3 GB of RSS.
    path = CORPUS / "data" / "large_string_map.brotli.parquet"
    report, out, dlq = _run(path, tmp_path)
    assert (report.rows_read, report.rows_invalid, report.invalid_by_stage) == (2, 2, {"parse": 2})
    assert out.read_text() == ""
    records = read_jsonl(dlq)
    assert [r["record"] for r in records] == [1, 2]
    assert "row group 0" in records[0]["errors"][0]["msg"] and "max_record_bytes=67,108,864" in records[0]["errors"][0]["msg"]
