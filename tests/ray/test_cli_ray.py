"""`flowschema run … --executor ray` resolves the plugin through its entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.integration.pipeline_models import write_items_csv

pytest.importorskip("ray")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_cli_runs_with_the_ray_executor(tmp_path):
    src = tmp_path / "items.csv"
    write_items_csv(src, 800, bad_every=100)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PYTHONPATH=REPO, RAY_USAGE_STATS_ENABLED="0")
    done = subprocess.run(
        [sys.executable, "-m", "flowschema_core", "run", str(src), "--model", "tests.integration.pipeline_models:Item",
         "--sink", str(tmp_path / "o.jsonl"), "--errors", str(tmp_path / "e.jsonl"), "--executor", "ray", "--workers", "2",
         "--report", str(tmp_path / "r.json"), "--quiet"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["executor"] == "RayExecutor" and report["workers"] == 2
    assert report["rows_read"] == 800 and report["rows_invalid"] == 15
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == report["rows_valid"] == 785
