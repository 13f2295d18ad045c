"""The byte budget covers results too: a chunk reserves its input and an allowance for
its result, and a chunk whose result would outgrow it is split (real pipelines, real
worker processes, real files)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import flowschema_core as fs
from flowschema_core.ledger import ResultAllowance
from tests.helpers import dlq_without_run_fields, run_to_jsonl
from tests.integration.pipeline_models import IdName, Item, write_items_csv
from tests.integration.result_budget_models import BUDGET, CHUNK_BYTES, Expand

REPO = Path(__file__).resolve().parents[2]
ROWS = 3_000


@pytest.fixture(scope="module")
def items_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "items.csv"
    write_items_csv(path, ROWS, bad_every=50)  # every 50th price negative, the row after it ragged
    return path


@pytest.fixture(scope="module")
def inline_run(items_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[fs.RunReport, bytes, list[dict]]:
    return run_to_jsonl(tmp_path_factory.mktemp("inline"), "inline", fs.CSVSource(items_csv), Item, "inline",
                        chunk_bytes=CHUNK_BYTES, max_bytes_in_flight="64MB", hooks=[Expand(20)])


def _record_lines(path: Path) -> dict[int, int]:
    """Record number -> the line it starts on (some records span two lines)."""
    starts, line = {}, 2
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        for record, _ in enumerate(reader, start=1):
            starts[record] = line
            line = reader.line_num + 1
    return starts


def test_results_twenty_times_the_input_are_split_and_the_budget_holds(items_csv, inline_run, tmp_path) -> None:
    report, out, dlq = run_to_jsonl(tmp_path, "proc", fs.CSVSource(items_csv), Item, fs.MultiprocessingExecutor(workers=2),
                                    chunk_bytes=CHUNK_BYTES, max_bytes_in_flight=BUDGET, hooks=[Expand(20)])
    ref_report, ref_out, ref_dlq = inline_run
    assert report.result_splits > 0  # the default ratio (4) was far too small for these results
    assert report.result_bytes > 15 * report.bytes_read
    assert 0 < report.peak_bytes_in_flight <= report.max_bytes_in_flight == fs.parse_size(BUDGET)
    # Splits change nothing in what is written: the same rows and DLQ records, in order.
    assert out == ref_out
    assert dlq == ref_dlq
    assert report.chunks == ref_report.chunks  # a split chunk is still one chunk
    lines = _record_lines(items_csv)
    bad = [i for i in range(1, ROWS + 1) if i % 50 == 0 or (i % 50 == 1 and i > 1)]
    assert [(d["record"], d["line"]) for d in dlq] == [(i, lines[i]) for i in bad]
    assert {d["stage"] for d in dlq} == {"parse", "validate"}
    assert report.rows_valid == ROWS - len(bad)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == [i for i in range(1, ROWS + 1) if i not in set(bad)]
    assert all(len(r["note"]) >= 20 * len(str(r["id"])) for r in rows)


def test_only_the_first_chunk_per_worker_is_sent_before_the_ratio_is_measured(tmp_path) -> None:
    """Narrow rows with 10% bad: a DLQ line is long beside an 8-byte row, so results are
    about 5x the input, over the starting ratio (4). Every chunk sent on that guess comes
    back too large and is split (its work done twice); slow start sends one chunk per
    worker until the first result has measured the ratio, so at most those are split."""
    path = tmp_path / "narrow.csv"
    path.write_text("id,name\n" + "".join(f"{'x' if i % 10 == 0 else i},n{i % 100}\n" for i in range(40_000)), encoding="utf-8")
    _, ref_out, ref_dlq = run_to_jsonl(tmp_path, "inline", fs.CSVSource(path), IdName, "inline", chunk_bytes="8KiB")
    report, out, dlq = run_to_jsonl(tmp_path, "proc", fs.CSVSource(path), IdName, fs.MultiprocessingExecutor(workers=2),
                                    chunk_bytes="8KiB", max_bytes_in_flight="2MiB")
    assert report.result_bytes > 4 * report.bytes_read  # the starting ratio was too small
    assert 1 <= report.result_splits <= 2  # without slow start: every chunk in flight, about 40
    assert report.chunks > 40 and report.peak_bytes_in_flight <= 2 << 20
    assert (out, dlq) == (ref_out, ref_dlq)


def test_a_budget_too_small_for_one_result_still_finishes_within_it(items_csv, inline_run, tmp_path) -> None:
    # 48 KiB beside a 16 KiB chunk: every chunk's result (~20x) must be split several times.
    report, out, dlq = run_to_jsonl(tmp_path, "tight", fs.CSVSource(items_csv), Item, fs.MultiprocessingExecutor(workers=2),
                                    chunk_bytes=CHUNK_BYTES, max_bytes_in_flight="64KiB", hooks=[Expand(20)])
    _, ref_out, ref_dlq = inline_run
    assert report.result_splits >= report.chunks
    assert report.peak_bytes_in_flight <= 64 * 1024
    assert (out, dlq) == (ref_out, ref_dlq)


def test_one_record_larger_than_its_allowance_goes_alone(tmp_path) -> None:
    # A one-record chunk cannot be split: it passes, counted beyond the budget (documented).
    path = tmp_path / "one.csv"
    path.write_text("id,name,price,note\n1," + "n" * 2000 + ",1.5,\n", encoding="utf-8")
    report, out, _ = run_to_jsonl(tmp_path, "one", fs.CSVSource(path), Item, "inline", chunk_bytes="4KiB", max_bytes_in_flight="8KiB",
                                  hooks=[Expand(20)])
    assert report.rows_valid == 1 and report.result_splits == 0
    assert report.result_bytes > 8 * 1024
    assert report.peak_bytes_in_flight >= report.result_bytes  # the ledger saw the record's whole result
    assert len(json.loads(out)["note"]) >= 20 * 2000


@pytest.mark.parametrize("bad", [0.03, 0.30])
def test_a_plain_csv_run_needs_no_split_at_the_default_ratio(bad, tmp_path) -> None:
    sys.path.insert(0, str(REPO))
    from examples.generate_orders import generate_orders_csv
    from examples.orders_model import Order

    path = tmp_path / "orders.csv"
    generate_orders_csv(path, 6_000, bad_fraction=bad, seed=3)
    for sink in (fs.JSONLSink(tmp_path / "o.jsonl"), fs.ParquetSink(tmp_path / "o.parquet")):
        report = fs.Pipeline(fs.CSVSource(path), Order, sink, fs.JSONLSink(tmp_path / "e.jsonl"),
                             executor=fs.MultiprocessingExecutor(workers=2), chunk_bytes="64KiB", max_bytes_in_flight="4MB").run()
        assert report.rows_invalid > 0 and report.balanced
        assert report.result_splits == 0, report.summary()
        assert report.result_bytes < ResultAllowance.DEFAULT_RATIO / ResultAllowance.HEADROOM * report.bytes_read
        assert report.peak_bytes_in_flight <= report.max_bytes_in_flight


def test_a_driver_killed_while_chunks_are_split_resumes_to_the_same_output(items_csv, inline_run, tmp_path) -> None:
    out, checkpoint = tmp_path / "out", tmp_path / "ck"
    out.mkdir()
    cmd = [sys.executable, "-m", "tests.integration.result_budget_models", str(items_csv), str(out), str(checkpoint)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed = subprocess.run(cmd, cwd=REPO, env={**env, "FLOWSCHEMA_FAULT": "checkpoint-commit:4"}, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    state = json.loads((checkpoint / "state.json").read_text())
    assert 0 < state["chunks_done"] and state["report"]["result_splits"] > 0
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    report = fs.RunReport.from_dict(json.loads(done.stdout.decode().split("REPORT ", 1)[1]))
    _, ref_out, ref_dlq = inline_run
    assert (out / "out.jsonl").read_bytes() == ref_out
    assert dlq_without_run_fields(out / "errors.jsonl") == ref_dlq
    # (Not report.chunks: a checkpoint carries the chunks *read*, those in flight included,
    # so a resumed run's count is larger than an uninterrupted one's whether or not it split.)
    assert report.rows_read == ROWS and report.resumed_from_record > 0
    assert report.result_splits >= 1


def test_excel_results_are_split_beside_the_workers_shared_strings(tmp_path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    sheet = wb.active
    sheet.append(["id", "name", "price", "note"])
    for i in range(1, 2_001):
        sheet.append([i, f"name {i % 300}", -1 if i % 97 == 0 else i + 0.5, None])  # every 97th: a negative price
    wb.save(tmp_path / "items.xlsx")
    runs = {}
    for executor in ("inline", fs.MultiprocessingExecutor(workers=2)):
        name = "inline" if executor == "inline" else "proc"
        runs[name] = run_to_jsonl(tmp_path, name, fs.ExcelSource(tmp_path / "items.xlsx", reader="fast"), Item, executor,
                                  chunk_bytes="16KiB", max_bytes_in_flight="512KiB", hooks=[Expand(100)])  # cells are small beside their XML
    (report, out, dlq), (_, ref_out, ref_dlq) = runs["proc"], runs["inline"]
    assert "read with the fast reader" in report.notes[0]  # each worker holds the shared strings: reserved in the ledger
    assert report.result_splits > 0
    assert report.peak_bytes_in_flight <= report.max_bytes_in_flight
    assert (out, dlq) == (ref_out, ref_dlq)
    assert [(d["record"], d["line"]) for d in dlq] == [(i, i + 1) for i in range(97, 2_001, 97)]
