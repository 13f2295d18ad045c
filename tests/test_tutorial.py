"""docs/tutorial.md, run as a user would: every command block, in order, checked.

The commands are read from the page itself — each ```bash block preceded by a
``<!-- tutorial-step: NAME -->`` marker — so the page and this test cannot drift apart: a
block without a marker, a step renamed, added or removed fails here, and so does a
command that stops working. Each step runs in ``bash -e`` in a copy of the files the
tutorial needs (Makefile, pyproject.toml, examples/) in a temporary directory, with the
repository's virtual environment on PATH, so nothing is written into the repository.

The figures checked are those of the data: the demo CSV is generated with a fixed seed,
and the recovered count is computed from the DLQ the tutorial's own run wrote.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

import pytest

from examples.generate_orders import generate_orders_csv

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
STEP = re.compile(r"<!-- tutorial-step: (?P<name>[\w-]+) -->\n```bash\n(?P<script>.*?)```", re.S)
TIMEOUT = 300  # seconds a step may take; `make demo` takes 15-25 s on a quiet machine
EIGHT_MB = 8_000_000


def tutorial_steps() -> list[tuple[str, str]]:
    text = TUTORIAL.read_text(encoding="utf-8")
    steps = [(m["name"], m["script"]) for m in STEP.finditer(text)]
    # Every command block on the page is a tested step (a ```text block is output, not a command).
    assert len(steps) == text.count("```bash"), "a ```bash block in docs/tutorial.md has no <!-- tutorial-step: NAME --> marker"
    return steps


def copy_of_the_repository(dest: pathlib.Path) -> None:
    """What the tutorial's commands read, copied; .venv made of links to the real one."""
    dest.mkdir()
    for name in ("Makefile", "pyproject.toml", "constraints-dev.txt"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "examples", dest / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    # A venv whose bin/ and lib/ are the repository's: Python finds pyvenv.cfg beside the
    # bin/ it was started from, so `.venv/bin/python` here uses the installed packages,
    # and nothing (no `pip install`, no stamp) is written into the real .venv.
    venv = pathlib.Path(sys.prefix)
    assert venv != pathlib.Path(sys.base_prefix), "run the tests with the repository's .venv (make test)"
    (dest / ".venv").mkdir()
    shutil.copy2(venv / "pyvenv.cfg", dest / ".venv" / "pyvenv.cfg")
    for name in ("bin", "lib", "lib64", "include"):
        if (venv / name).exists():
            (dest / ".venv" / name).symlink_to(venv / name)
    # make's stamp (.venv/.installed: `pip install` done) newer than pyproject.toml.
    old = time.time() - 3600
    for name in ("pyproject.toml", "constraints-dev.txt"):
        os.utime(dest / name, (old, old))
    (dest / ".venv" / ".installed").touch()


def run_step(script: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL")}
    env["PATH"] = f"{pathlib.Path(sys.prefix) / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "200"  # rich's tables: as on a wide terminal, so a headline is one line
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, f"exit {done.returncode}\n--- script\n{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


def jsonl(path: pathlib.Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def model_fault(record: dict) -> bool:
    """A demo DLQ record refused for what the tutorial's fixed model reads: a decimal comma,
    a day-first date, a lower-case currency (generate_orders writes each bad row bad in
    exactly one way, so these records pass once those are read)."""
    raw = record.get("raw") or {}
    return raw.get("unit_price") == "12,50" or raw.get("order_date") == "31/12/2024" or raw.get("currency") == "usd"


@pytest.mark.slow
def test_the_tutorial_runs_as_written(tmp_path: pathlib.Path) -> None:
    repo = tmp_path / "flowschema"
    copy_of_the_repository(repo)
    out = repo / "build" / "tutorial"

    def check_demo(done: subprocess.CompletedProcess[str]) -> None:
        assert "OK: read 200,000 = valid 196,000 + invalid 4,000 + filtered 0" in done.stdout
        assert (repo / "build" / "demo" / "orders.csv").is_file()
        assert "pip install" not in done.stdout  # the venv was taken as installed

    def check_run(done: subprocess.CompletedProcess[str]) -> None:
        assert "read 200,000 = valid 196,000 + invalid 4,000" in done.stdout
        # Not a terminal: the progress line's plain form, its last line at the end of the run.
        assert re.search(r"^flowschema: read 200,000 \(valid 196,000, invalid 4,000\), .* 100%$", done.stderr, re.M), done.stderr
        saved = json.loads((out / "run.json").read_text(encoding="utf-8"))
        assert (saved["rows_read"], saved["rows_valid"], saved["rows_invalid"]) == (200_000, 196_000, 4_000)
        assert saved["max_bytes_in_flight"] == EIGHT_MB and saved["peak_bytes_in_flight"] <= EIGHT_MB
        assert len(saved["timeline"]) >= 2
        assert len(jsonl(out / "orders.errors.jsonl")) == 4_000

    def check_report(done: subprocess.CompletedProcess[str]) -> None:
        page = (out / "report.html").read_text(encoding="utf-8")
        assert page.count("<svg") >= 3 and "200,000" in page and "<script" not in page

    def check_inspect(done: subprocess.CompletedProcess[str]) -> None:
        stages = Counter(d["stage"] for d in jsonl(out / "orders.errors.jsonl"))
        assert stages["parse"] > 0 and stages["validate"] > 0
        headline = (f"build/tutorial/orders.errors.jsonl: 4,000 records (parse {stages['parse']:,}, validate {stages['validate']:,})")
        assert done.stdout.startswith(headline), done.stdout[:300]
        for shown in ("'12,50'", "'31/12/2024'", "'usd'"):  # what the page tells the reader to spot
            assert shown in done.stdout

    def check_infer(done: subprocess.CompletedProcess[str]) -> None:
        module = (out / "april_model.py").read_text(encoding="utf-8")
        assert "class Order(BaseModel):" in module and module in done.stdout  # `cat` showed it
        assert "    unit_price: Decimal  #" in module and "    order_date: dt.date  #" in module
        # The file again, from its generator: a type-only model refuses bad dates and prices
        # and the ragged rows; bad e-mails, quantities and currencies are still str / int.
        bad = generate_orders_csv(tmp_path / "april.csv", 20_000, seed=4)
        parse, validate = bad["ragged_short"] + bad["ragged_long"], bad["bad_date"] + bad["bad_price"]
        assert f"read 20,000 = valid {20_000 - parse - validate:,} + invalid {parse + validate:,} (parse {parse}, validate {validate})" in done.stdout

    def check_fix(done: subprocess.CompletedProcess[str]) -> None:
        assert "class Order(StrictOrder):" in (out / "fixed_orders.py").read_text(encoding="utf-8")

    def check_replay(done: subprocess.CompletedProcess[str]) -> None:
        refused = jsonl(out / "orders.errors.jsonl")
        recovered = sum(model_fault(d) for d in refused)
        assert recovered > 0
        still = len(refused) - recovered
        assert f"read 4,000 = valid {recovered:,} + invalid {still:,}" in done.stdout
        rows = jsonl(out / "recovered.jsonl")
        assert len(rows) == recovered
        assert json.dumps(rows[0], ensure_ascii=False, separators=(",", ":")) in done.stdout  # `head` showed it
        assert {r["order_id"] for r in rows} == {d["record"] for d in refused if model_fault(d)}  # order_id n is record n
        still_bad = jsonl(out / "still-bad.jsonl")
        assert len(still_bad) == still
        # Lineage: the original input and record numbers, not the DLQ's.
        assert {(d["source"], d["record"]) for d in still_bad} == {(d["source"], d["record"]) for d in refused if not model_fault(d)}
        assert f"build/tutorial/still-bad.jsonl: {still:,} records" in done.stdout

    checks: dict[str, Callable[[subprocess.CompletedProcess[str]], None]] = {
        "demo": check_demo, "run": check_run, "report": check_report, "inspect": check_inspect,
        "infer": check_infer, "fix": check_fix, "replay": check_replay,
    }
    steps = tutorial_steps()
    assert [name for name, _ in steps] == list(checks), "the tutorial's steps changed: update the checks here"
    for name, script in steps:
        checks[name](run_step(script, repo))
