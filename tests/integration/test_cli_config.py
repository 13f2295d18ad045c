"""``flowschema run --config pipeline.toml``: real files, the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def flowschema(*args, cwd):
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-m", "flowschema_core", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def project(tmp_path):
    """A config directory with its data and a model module beside the config file, and an
    unrelated working directory to run from."""
    job = tmp_path / "job"
    (job / "data").mkdir(parents=True)
    lines = ["id;name;price;note"] + [f"{i};item {i};{'-' if i % 50 == 0 else ''}{i}.5;" for i in range(1, 201)]
    (job / "data" / "items.csv").write_text("\n".join(lines) + "\n")
    (job / "job_models.py").write_text("from tests.integration.pipeline_models import Item\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return job, elsewhere


def _write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_a_config_runs_the_pipeline_with_paths_relative_to_it(project):
    job, elsewhere = project
    config = _write(job / "pipeline.toml", """
        model = "job_models:Item"
        errors = "out/dlq.jsonl"
        executor = "inline"
        max_bytes_in_flight = 8_000_000
        chunk_bytes = "64KiB"
        max_invalid = 10
        report = "out/run.json"
        quiet = true

        [source]
        path = "data/items.csv"
        delimiter = ";"
        null_values = ["NA", "-"]

        [sink]
        path = "out/clean.jsonl"
    """)
    (job / "out").mkdir()
    done = flowschema("run", "--config", config, cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""  # quiet = true
    report = json.loads((job / "out" / "run.json").read_text())
    assert (report["rows_read"], report["rows_valid"], report["rows_invalid"]) == (200, 196, 4)
    assert report["max_bytes_in_flight"] == 8_000_000 and report["executor"] == "InlineExecutor"
    assert len((job / "out" / "clean.jsonl").read_text().splitlines()) == 196
    assert len((job / "out" / "dlq.jsonl").read_text().splitlines()) == 4
    assert os.listdir(elsewhere) == []  # nothing relative to the working directory


def test_flags_override_the_config(project):
    job, elsewhere = project
    config = _write(job / "pipeline.toml", """
        source = "data/items.csv"
        model = "job_models:Item"
        sink = "clean.jsonl"
        executor = "inline"
        delimiter = ","
        max_bytes_in_flight = "8MB"
    """)
    report_path = elsewhere / "run.json"
    done = flowschema("run", "--config", config, "--delimiter", ";", "--sink", "mine.jsonl", "--max-bytes-in-flight", "4MB",
                      "--report", "run.json", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    assert report["rows_valid"] == 196 and report["max_bytes_in_flight"] == 4_000_000
    assert len((elsewhere / "mine.jsonl").read_text().splitlines()) == 196  # a flag's path is the working directory's
    assert not (job / "clean.jsonl").exists()


def test_a_sink_table_writes_to_sqlite(project):
    job, elsewhere = project
    config = _write(job / "pipeline.toml", f"""
        source = "data/items.csv"
        model = "job_models:Item"
        errors = "dlq.jsonl"
        executor = "inline"
        delimiter = ";"
        upsert_key = ["id"]

        [sink]
        path = "sqlite:///{job / 'shop.db'}"
        table = "items"
    """)
    for _ in range(2):  # the upsert key makes a second run safe
        done = flowschema("run", "--config", config, "--quiet", cwd=elsewhere)
        assert done.returncode == 0, done.stderr
    with sqlite3.connect(job / "shop.db") as db:
        assert db.execute("select count(*) from items").fetchone() == (196,)


def test_source_model_and_sink_are_required_from_one_or_the_other(project):
    job, elsewhere = project
    config = _write(job / "partial.toml", 'model = "job_models:Item"\n')
    done = flowschema("run", "--config", config, cwd=elsewhere)
    assert done.returncode == 2
    assert done.stderr == "flowschema: error: SOURCE, --sink missing: give them on the command line or in --config FILE (keys source, model, sink)\n"
    done = flowschema("run", job / "data" / "items.csv", "--config", config, "--sink", "out.jsonl", "--delimiter", ";", "--executor", "inline",
                      "--quiet", cwd=elsewhere)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('modle = "job_models:Item"', "pipeline.toml: unknown key 'modle' (did you mean 'model'?)"),
        ("max_bytes_in_fligth = 5", "unknown key 'max_bytes_in_fligth' (did you mean 'max_bytes_in_flight'?)"),
        ("source_option = 1", "unknown key 'source_option'"),
        ('workers = "two"', "pipeline.toml: workers must be an integer, not string 'two'"),
        ("workers = true", "workers must be an integer, not boolean True"),
        ("quiet = 1", "quiet must be true/false, not integer 1"),
        ("model = 3", "model must be a string, not integer 3"),
        ("max_bytes_in_flight = 1.5", "max_bytes_in_flight must be a string or an integer, not float 1.5"),
        ('upsert_key = ["id", 2]', "upsert_key must be a list of strings"),
        ("[errors]\npath = 'x.jsonl'", "errors must be a string, not table"),
        ("[source]\ndelimiter = ';'", "the [source] table needs path = \"...\""),
        ('[source]\npath = "data/items.csv"\ndelimeter = ";"', "unknown source option 'delimeter' for CSVSource (did you mean 'delimiter'?)"),
        ('[source]\npath = "data/items.csv"\ndelimiter = 5', "a source option has the wrong type"),
        ('model = "job_models:Item', "pipeline.toml is not valid TOML"),
    ],
)
def test_config_mistakes_get_one_line_and_exit_2(project, toml, message):
    job, elsewhere = project
    base = 'sink = "out.jsonl"\n' + ("" if "[source]" in toml else 'source = "data/items.csv"\n')
    base += "" if toml.startswith(("model", "modle")) else 'model = "job_models:Item"\n'
    config = job / "pipeline.toml"
    config.write_text(base + toml + "\n")
    done = flowschema("run", "--config", config, cwd=elsewhere)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def test_a_missing_config_file_is_a_usage_error(tmp_path):
    done = flowschema("run", "--config", "nope.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == "flowschema: error: config file not found: nope.toml\n"
