"""The ``flowschema`` command: a run, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.integration.pipeline_models import write_items_csv

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def flowschema(*args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-m", "flowschema_core", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_run_writes_outputs_and_report(tmp_path):
    src = tmp_path / "items.csv"
    write_items_csv(src, 1_000, bad_every=100)
    done = flowschema("run", src, "--model", "tests.integration.pipeline_models:Item", "--sink", tmp_path / "out.csv",
                      "--errors", tmp_path / "dlq.jsonl", "--workers", "2", "--max-bytes-in-flight", "8MiB", "--report", tmp_path / "run.json")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["rows_read"] == 1_000 and report["rows_invalid"] == 19
    assert report["max_bytes_in_flight"] == 8 * 2**20
    out_lines = (tmp_path / "out.csv").read_text().splitlines()
    assert out_lines[0] == "id,name,price,note"
    assert len((tmp_path / "dlq.jsonl").read_text().splitlines()) == 19
    assert "read 1,000" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv", "--model", "tests.integration.pipeline_models:Item", "--sink", "o.jsonl"], "source file not found: missing.csv"),
        (["{src}", "--model", "no_such_module:Item", "--sink", "o.jsonl"], "cannot import module 'no_such_module'"),
        (["{src}", "--model", "tests.integration.pipeline_models:Nope", "--sink", "o.jsonl"], "has no attribute 'Nope'"),
        (["{src}", "--model", "tests.integration.pipeline_models", "--sink", "o.jsonl"], "package.module:ClassName"),
        (["{src}", "--model", "tests.integration.pipeline_models:write_items_csv", "--sink", "o.jsonl"], "not a pydantic.BaseModel"),
        (["{src}", "--model", "tests.integration.pipeline_models:Item", "--sink", "o.unknown"], "cannot tell what kind of sink"),
        (["{src}", "--model", "tests.integration.pipeline_models:Item", "--sink", "o.jsonl", "--max-bytes-in-flight", "lots"], "is not a size"),
        (["{src}", "--model", "tests.integration.pipeline_models:Item", "--sink", "o.jsonl", "--executor", "warp"], "unknown executor 'warp'"),
    ],
)
def test_user_mistakes_get_one_line_and_exit_2(tmp_path, args, message):
    src = tmp_path / "items.csv"
    write_items_csv(src, 5)
    done = flowschema("run", *[a.format(src=src) for a in args], cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr


def test_csv_to_sqlite_and_back_through_the_cli(tmp_path):
    src = tmp_path / "items.csv"
    write_items_csv(src, 500, bad_every=100)
    db = f"sqlite:///{tmp_path / 'shop.db'}"
    model = "tests.integration.pipeline_models:Item"
    dlq = tmp_path / "dlq.jsonl"
    done = flowschema("run", src, "--model", model, "--sink", db, "--sink-table", "items", "--upsert-key", "id", "--executor", "inline", "--errors", dlq)
    assert done.returncode == 0, done.stderr
    again = flowschema("run", src, "--model", model, "--sink", db, "--sink-table", "items", "--upsert-key", "id", "--executor", "inline",
                       "--errors", dlq)
    assert again.returncode == 0, again.stderr  # the upsert key makes a re-run safe
    assert len(dlq.read_text().splitlines()) == 9
    back = flowschema("run", db, "--table", "items", "--model", model, "--sink", tmp_path / "back.jsonl", "--executor", "inline",
                      "--report", tmp_path / "r.json")
    assert back.returncode == 0, back.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["rows_read"] == report["rows_valid"] == 500 - 9


def test_sql_sink_without_a_table_is_a_usage_error(tmp_path):
    src = tmp_path / "items.csv"
    write_items_csv(src, 5)
    done = flowschema("run", src, "--model", "tests.integration.pipeline_models:Item", "--sink", f"sqlite:///{tmp_path / 'x.db'}")
    assert done.returncode == 2 and "--sink-table is needed" in done.stderr
