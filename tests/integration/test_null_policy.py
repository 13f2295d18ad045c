"""The null policy: an empty cell is read the way the model's field asks (issue: a
`notes: str` column empty in one row in five sent those rows to the DLQ).

Each row of the table in flowschema_core/nulls.py, for CSV and Excel, under the inline
and the process executor; the Ray executor runs the CSV case in tests/ray.
"""

from __future__ import annotations

import csv
import json

import pytest
from pydantic import ValidationError

import flowschema_core as fs
from tests.helpers import read_jsonl
from tests.integration.null_models import Aliased, BeforeValidator, Order, Policy

EXECUTORS = ["inline", "process"]
HEADER = ["optional_int", "with_default", "text", "literal_empty", "amount", "day", "nested", "extra_col"]


def _run(tmp_path, source, model, executor, name="out"):
    sink, errors = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.errors.jsonl"
    report = fs.Pipeline(source, model, fs.JSONLSink(sink), fs.JSONLSink(errors), executor=executor, sample_interval=60).run()
    assert report.balanced
    return report, read_jsonl(sink), read_jsonl(errors)


def _csv(tmp_path, header, rows, name="in.csv"):
    path = tmp_path / name
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _xlsx(tmp_path, header, rows, name="in.xlsx"):
    openpyxl = pytest.importorskip("openpyxl")
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append([None if v == "" else v for v in row])  # an empty Excel cell
    path = tmp_path / name
    workbook.save(path)
    return path


def _source(kind, tmp_path, header, rows, **options):
    if kind == "csv":
        return fs.CSVSource(_csv(tmp_path, header, rows), **options)
    return fs.ExcelSource(_xlsx(tmp_path, header, rows), **options)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_each_row_of_the_table(tmp_path, kind, executor):
    rows = [
        ["", "", "", "", "1.5", "2026-01-02", "", ""],  # every optional cell empty: valid
        ["3", "4", "t", "x", "", "", "", "kept"],  # required non-strings empty: invalid, "missing"
    ]
    report, out, dlq = _run(tmp_path, _source(kind, tmp_path, HEADER, rows), Policy, executor)
    assert report.rows_valid == 1 and report.rows_invalid == 1
    assert out[0] == {"optional_int": None, "with_default": 7, "text": "", "literal_empty": "", "amount": "1.5", "day": "2026-01-02",
                      "nested": None, "extra_col": ""}
    errors = {tuple(e["loc"]): e["type"] for e in dlq[0]["errors"]}
    assert errors == {("amount",): "missing", ("day",): "missing"}
    # The DLQ keeps the cells as read, never the converted record.
    empty = "" if kind == "csv" else None
    assert dlq[0]["raw"]["amount"] == empty and dlq[0]["raw"]["nested"] == empty and dlq[0]["raw"]["text"] == "t"


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_null_values_are_read_like_empty_cells_and_kept_as_read_in_the_dlq(tmp_path, kind):
    rows = [["NA", "N/A", "NA", "", "-", "2026-01-02", "", "NA"], ["1", "2", "x", "", "bad", "2026-01-02", "", ""]]
    source = _source(kind, tmp_path, HEADER, rows, null_values=["NA", "N/A", "-"])
    report, _out, dlq = _run(tmp_path, source, Policy, "inline")
    assert report.rows_valid == 0 and report.rows_invalid == 2
    assert {tuple(e["loc"]) for e in dlq[0]["errors"]} == {("amount",)}  # NA/N/A/- became no value
    assert dlq[0]["raw"]["optional_int"] == "NA" and dlq[0]["raw"]["amount"] == "-"
    assert dlq[1]["errors"][0]["type"] == "decimal_parsing"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_aliases_and_populate_by_name_resolve_against_the_source_names(tmp_path, executor):
    path = _csv(tmp_path, ["Order ID", "Remark", "Qty"], [["1", "", ""], ["", "n", "2"]])
    _report, out, dlq = _run(tmp_path, fs.CSVSource(path), Aliased, executor)
    assert out == [{"order_id": 1, "note": "", "qty": None}]
    assert [tuple(e["loc"]) for e in dlq[0]["errors"]] == [("Order ID",)] and dlq[0]["errors"][0]["type"] == "missing"


def test_a_before_model_validator_sees_the_record_after_the_policy(tmp_path):
    path = _csv(tmp_path, ["name", "score"], [["ann", ""], ["", "3"]])
    _, out, _ = _run(tmp_path, fs.CSVSource(path), BeforeValidator, "inline")
    assert out == [{"name": "ANN", "score": 0}, {"name": "", "score": 3}]


def test_empty_cells_modes(tmp_path):
    path = _csv(tmp_path, ["order_id", "email", "amount", "notes"], [["1", "a@x", "2", ""]])
    assert _run(tmp_path, fs.CSVSource(path), Order, "inline")[0].rows_valid == 1
    assert _run(tmp_path, fs.CSVSource(path, empty_cells="keep"), Order, "inline", "keep")[0].rows_valid == 1
    assert _run(tmp_path, fs.CSVSource(path, empty_cells="none"), Order, "inline", "none")[0].rows_invalid == 1
    with pytest.raises(fs.ConfigError, match="empty_cells"):
        fs.CSVSource(path, empty_cells="nan")


@pytest.mark.parametrize("executor", EXECUTORS)
def test_defaults_accept_everything_the_plain_dictreader_loop_accepts(tmp_path, executor):
    """The loop a user would write instead. FlowSchema may accept more (an empty cell of a
    field with a default gets the default), never less, and the same values."""
    rows = []
    for i in range(1, 2001):
        notes = "" if i % 5 == 0 else f"note {i}"
        amount = "" if i % 97 == 0 else f"{i % 300}.25"
        rows.append([str(i), f"u{i}@example.com", amount, notes])
    path = _csv(tmp_path, ["order_id", "email", "amount", "notes"], rows)
    plain = {}
    with open(path, newline="", encoding="utf-8") as f:
        for record in csv.DictReader(f):
            try:
                plain[int(record["order_id"])] = json.loads(Order.model_validate(record).model_dump_json())
            except ValidationError:
                pass
    report, out, dlq = _run(tmp_path, fs.CSVSource(path), Order, executor)
    ours = {row["order_id"]: row for row in out}
    assert len(plain) == 2000 - 20  # the rows with an empty amount are invalid for both
    assert ours == plain
    assert report.rows_invalid == 20 and all(d["errors"][0]["type"] == "missing" for d in dlq)
