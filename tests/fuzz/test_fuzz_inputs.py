"""Fuzz every file format with damaged real inputs.

Every run must end in one of two ways: the counts balance (each record in the sink, the
DLQ or filtered), or the whole file is refused with a FlowSchemaError. Never another
exception, never a hang. Cases that once failed live in tests/fuzz/corpus/ and run too.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import flowschema_core as fs
from tests.fuzz.mutate import mutate
from tests.integration.pipeline_models import Item

CASES_PER_FORMAT = 60
CORPUS = Path(__file__).parent / "corpus"
TALLY = {"cases": 0, "balanced": 0, "refused": 0}


def _rows(n=60):
    return [{"id": i, "name": f"item {i}", "price": f"{i}.5", "note": "a, \"quoted\"\nnote" if i % 5 == 0 else None} for i in range(1, n + 1)]


def _csv() -> bytes:
    out = io.StringIO()
    import csv

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "name", "price", "note"])
    for r in _rows():
        writer.writerow([r["id"], r["name"], r["price"], r["note"] or ""])
    return out.getvalue().encode()


def _jsonl() -> bytes:
    return "".join(json.dumps(r) + "\n" for r in _rows()).encode()


def _json() -> bytes:
    return json.dumps(_rows()).encode()


def _parquet() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(_rows()), sink, row_group_size=20)
    return sink.getvalue()


def _xlsx() -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["id", "name", "price", "note"])
    for r in _rows():
        ws.append([r["id"], r["name"], float(r["price"]), r["note"]])
    sink = io.BytesIO()
    wb.save(sink)
    return sink.getvalue()


FORMATS = {
    "csv": (_csv, fs.CSVSource),
    "jsonl": (_jsonl, fs.JSONLSource),
    "json": (_json, fs.JSONSource),
    "parquet": (_parquet, fs.ParquetSource),
    "xlsx": (_xlsx, fs.ExcelSource),
}


def run_case(path: Path, source_cls, out: Path) -> str:
    """Run one damaged input; return "balanced" or "refused", or fail the test."""
    try:
        report = fs.Pipeline(source_cls(path), Item, fs.JSONLSink(out / "o.jsonl"), fs.JSONLSink(out / "e.jsonl"),
                             executor="inline", chunk_bytes="1KiB").run()
    except fs.FlowSchemaError:
        assert not (out / "o.jsonl").exists(), "a refused file must leave no output"
        return "refused"
    assert report.balanced
    written = len((out / "o.jsonl").read_bytes().splitlines())
    dlq = len((out / "e.jsonl").read_bytes().splitlines())
    assert (written, dlq) == (report.rows_valid, report.rows_invalid)
    return "balanced"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_damaged_inputs_end_cleanly(fmt, tmp_path):
    make, source_cls = FORMATS[fmt]
    original = make()
    for seed in range(CASES_PER_FORMAT):
        case = tmp_path / f"case{seed}.{fmt}"
        case.write_bytes(mutate(original, seed))
        out = tmp_path / f"out{seed}"
        try:
            outcome = run_case(case, source_cls, out)
        except BaseException as exc:
            CORPUS.mkdir(exist_ok=True)
            kept = CORPUS / f"{fmt}-seed{seed}.{fmt}"
            kept.write_bytes(case.read_bytes())
            raise AssertionError(f"{fmt} seed {seed} ended with {type(exc).__name__}: {exc} (input kept as {kept})") from exc
        TALLY["cases"] += 1
        TALLY[outcome] += 1


@pytest.mark.parametrize("case", sorted(CORPUS.glob("*.*")), ids=lambda p: p.name)
def test_regression_corpus(case, tmp_path):
    source_cls = FORMATS[case.suffix.lstrip(".")][1]
    run_case(case, source_cls, tmp_path)


def test_zz_report_tally(capsys):
    with capsys.disabled():
        print(f"\nfuzz suite: {TALLY}")
    assert TALLY["cases"] == CASES_PER_FORMAT * len(FORMATS)
