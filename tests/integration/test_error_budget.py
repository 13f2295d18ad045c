"""max_invalid: a run whose records are mostly refused stops with a clear error, the DLQ
keeps what it has, and nothing appears under the sink's final name."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import flowschema_core as fs
from tests.helpers import read_jsonl
from tests.integration.pipeline_models import Item, write_items_csv

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _wrong_delimiter_file(path, rows=5000):
    write_items_csv(path, rows)
    path.write_text(path.read_text().replace(",", ";"))  # read with ",": one column, no field of the model


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_a_share_stops_a_run_that_refuses_nearly_everything(tmp_path, executor):
    src = tmp_path / "items.csv"
    _wrong_delimiter_file(src)
    out, dlq = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl"
    with pytest.raises(fs.InvalidRecordsError) as info:
        fs.Pipeline(fs.CSVSource(src), Item, fs.JSONLSink(out), fs.JSONLSink(dlq), executor=executor, chunk_bytes="8KiB",
                    max_invalid="5%").run()
    message = str(info.value)
    assert "over max_invalid=5%" in message and "validate missing on 'id'" in message and "delimiter" in message
    assert not out.exists()
    kept = read_jsonl(dlq)
    assert 1000 <= len(kept) < 5000  # stopped early, and the DLQ kept what it had
    assert [r["record"] for r in kept] == list(range(1, len(kept) + 1))
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_a_share_waits_for_enough_records_and_a_good_file_passes(tmp_path):
    src = tmp_path / "items.csv"
    write_items_csv(src, 3000, bad_every=10)  # about 20% invalid
    report = fs.Pipeline(fs.CSVSource(src), Item, fs.JSONLSink(tmp_path / "o.jsonl"), fs.JSONLSink(tmp_path / "e.jsonl"),
                         executor="inline", max_invalid="25%").run()
    assert report.balanced and 0.15 < report.rows_invalid / report.rows_read < 0.25


def test_a_count_stops_past_the_count(tmp_path):
    src = tmp_path / "items.csv"
    write_items_csv(src, 3000, bad_every=10)
    with pytest.raises(fs.InvalidRecordsError, match="max_invalid=100"):
        fs.Pipeline(fs.CSVSource(src), Item, fs.JSONLSink(tmp_path / "o.jsonl"), fs.JSONLSink(tmp_path / "e.jsonl"),
                    executor="inline", chunk_bytes="4KiB", max_invalid=100).run()


@pytest.mark.parametrize("bad", ["lots", "150%", -1, "5 %%", 2.5])
def test_bad_budgets_are_config_errors(tmp_path, bad):
    with pytest.raises(fs.ConfigError, match="max_invalid"):
        fs.Pipeline(fs.CSVSource(tmp_path / "x.csv"), Item, fs.JSONLSink(tmp_path / "o.jsonl"), max_invalid=bad)


def test_the_cli_exits_1_with_one_line(tmp_path):
    src = tmp_path / "items.csv"
    _wrong_delimiter_file(src)
    done = subprocess.run([sys.executable, "-m", "flowschema_core.cli", "run", str(src), "--model", "tests.integration.pipeline_models:Item",
                           "--sink", "out.jsonl", "--errors", "dlq.jsonl", "--executor", "inline", "--max-invalid", "5%"],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    # stderr is a pipe: besides the progress line's plain lines ("flowschema: read ..."), the
    # wrong delimiter said at the start, then the error, one line.
    warning, error = [line for line in done.stderr.splitlines() if not line.startswith("flowschema: read ")]
    assert "pass delimiter=';'" in warning
    assert error.startswith("flowschema: error:") and "max_invalid=5%" in error and "Traceback" not in done.stderr
    assert (tmp_path / "dlq.jsonl").exists() and not (tmp_path / "out.jsonl").exists()
    assert json.loads((tmp_path / "dlq.jsonl").read_text().splitlines()[0])["stage"] == "validate"
