"""User scripts run as users write them: no __main__ guard, a model in __main__, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = """
import sys, time
from pydantic import BaseModel
import flowschema_core as fs

class Row(BaseModel):            # defined in the user's __main__
    id: int
    name: str

class Slow(fs.Hook):
    def before_validate(self, record):
        time.sleep({sleep})
        return record

with open("in.csv", "w") as f:
    f.write("id,name\\n")
    for i in range({rows}):
        f.write(f"{{i}},n{{i}}\\n" if i % 10 else f"x{{i}},n{{i}}\\n")

report = fs.Pipeline(fs.CSVSource("in.csv"), Row, fs.JSONLSink("out.jsonl"), fs.JSONLSink("err.jsonl"),
                     executor=fs.MultiprocessingExecutor(workers=2), chunk_bytes="4KiB", hooks=[Slow()]).run()
print("REPORT", report.to_json(indent=None))
"""


def _script(tmp_path, rows, sleep):
    path = tmp_path / "user_script.py"
    path.write_text(textwrap.dedent(SCRIPT.format(rows=rows, sleep=sleep)))
    return path


def _env():
    return {**os.environ, "PYTHONPATH": REPO}


def test_script_without_main_guard_and_model_in_main_works(tmp_path):
    path = _script(tmp_path, 5_000, 0)
    done = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "RuntimeError" not in done.stderr and "bootstrapping" not in done.stderr
    report = json.loads(done.stdout.split("REPORT ", 1)[1])
    assert report["rows_read"] == 5_000 and report["rows_valid"] == 4_500 and report["rows_invalid"] == 500
    assert done.stdout.count("REPORT") == 1  # the script ran once, not once per worker
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 4_500


def test_ctrl_c_stops_cleanly(tmp_path):
    path = _script(tmp_path, 50_000, 0.001)
    proc = subprocess.Popen([sys.executable, str(path)], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)
    workers = []
    deadline = time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        workers = [p for p in parent.children() if "_process_worker" in " ".join(p.cmdline())]
    assert len(workers) == 2, "workers never started"
    while time.monotonic() < deadline:  # wait until some rows reached the (temporary) sink file
        temps = [p for p in tmp_path.iterdir() if p.name.startswith(".out.jsonl") and p.stat().st_size > 0]
        if temps:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    report = json.loads(out.split("REPORT ", 1)[1])
    assert report["interrupted"] is True
    assert 0 < report["rows_read"] < 50_000
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "err.jsonl").exists()
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == []
    assert "Traceback" not in err


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_sigterm_stops_cleanly(tmp_path):
    path = _script(tmp_path, 50_000, 0.001)
    proc = subprocess.Popen([sys.executable, str(path)], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)
    assert _wait_for(lambda: len([p for p in parent.children() if "_process_worker" in " ".join(p.cmdline())]) == 2), "workers never started"
    workers = [p for p in parent.children() if "_process_worker" in " ".join(p.cmdline())]
    assert _wait_for(lambda: any(p.name.startswith(".out.jsonl") and p.stat().st_size > 0 for p in tmp_path.iterdir()))
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - started < 15  # "within a few seconds", with room for a loaded machine
    assert proc.returncode == 0, err
    report = json.loads(out.split("REPORT ", 1)[1])
    assert report["interrupted"] is True and report["stop_signal"] == "SIGTERM"
    assert 0 < report["rows_read"] < 50_000
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "err.jsonl").exists()
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == []
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_cli_sigterm_exits_143_and_a_checkpointed_run_resumes_to_the_same_output(tmp_path):
    import flowschema_core as fs
    from tests.helpers import dlq_without_run_fields
    from tests.integration.pipeline_models import SlowItem, write_items_csv

    src = tmp_path / "items.csv"
    write_items_csv(src, 20_000, bad_every=50)
    ref = tmp_path / "ref"
    ref.mkdir()
    fs.Pipeline(fs.CSVSource(src), SlowItem, fs.JSONLSink(ref / "out.jsonl"), fs.JSONLSink(ref / "err.jsonl"), executor="inline", chunk_bytes="4KiB").run()

    command = [sys.executable, "-m", "flowschema_core.cli", "run", str(src), "--model", "tests.integration.pipeline_models:SlowItem",
               "--sink", "out.jsonl", "--errors", "err.jsonl", "--workers", "2", "--chunk-bytes", "4KiB", "--checkpoint", "ckpt", "--quiet"]
    proc = subprocess.Popen(command, cwd=tmp_path, env={**_env(), "SLOW_ITEM_S": "0.0005"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_for(lambda: (tmp_path / "ckpt" / "state.json").exists()), "no checkpoint was written"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists()  # nothing under the final name...
    state = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    assert state["phase"] == "running" and 0 < state["report"]["rows_read"] < 20_000  # ...and a position to resume from

    done = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.jsonl").read_bytes() == (ref / "out.jsonl").read_bytes()
    assert dlq_without_run_fields(tmp_path / "err.jsonl") == dlq_without_run_fields(ref / "err.jsonl")
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_the_next_run_removes_the_temp_files_of_a_sigkilled_run_and_only_those(tmp_path):
    path = _script(tmp_path, 50_000, 0.001)
    proc = subprocess.Popen([sys.executable, str(path)], cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _wait_for(lambda: any(p.name.startswith(".out.jsonl") and p.stat().st_size > 0 for p in tmp_path.iterdir()))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    stale = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
    assert len(stale) == 2  # the sink's and the DLQ's: a SIGKILLed run cannot clean up
    from flowschema_core.sinks.base import _host

    live = tmp_path / f".out.jsonl.{_host()}-{os.getpid()}-0123abcd.tmp"  # another run of the sink, still going
    other = tmp_path / f".other.jsonl.{_host()}-999999-0123abcd.tmp"  # not this sink's
    elsewhere = tmp_path / ".out.jsonl.another-host-999999-0123abcd.tmp"  # a shared volume: its PIDs are not ours to judge
    for path in (live, other, elsewhere):
        path.write_text("x")

    rerun = _script(tmp_path, 500, 0)
    done = subprocess.run([sys.executable, str(rerun)], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
    assert left == sorted([live.name, other.name, elsewhere.name])
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 450
