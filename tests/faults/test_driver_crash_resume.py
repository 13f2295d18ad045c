"""SIGKILL the driver at random moments (and inside a checkpoint commit), then resume:
the final output must equal an uninterrupted run's, record for record."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import compare_outputs, dlq_without_run_fields
from tests.integration.pipeline_models import write_items_csv

REPO = Path(__file__).resolve().parents[2]
SEEDS = range(10)
TALLY = {"killed": 0, "resumes": 0, "lost": 0, "duplicated": 0}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("data")
    write_items_csv(path / "items.csv", 12_000, bad_every=40)
    return path


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    done = _start(data_dir, out, None, executor="inline", sleep=0)
    stdout, _ = done.communicate(timeout=300)
    assert done.returncode == 0
    report = json.loads(stdout.decode().split("REPORT ", 1)[1])
    return (out / "out.jsonl").read_bytes(), dlq_without_run_fields(out / "errors.jsonl"), (report["chunks"], report["bytes_read"])


def _start(data_dir, out, checkpoint, *, executor="process", sleep=0.0001, fault=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("FLOWSCHEMA_FAULT", None)
    if fault:
        env["FLOWSCHEMA_FAULT"] = fault
    cmd = [sys.executable, "-m", "tests.faults.run_pipeline", str(data_dir), str(out), "--executor", executor, "--sleep", str(sleep)]
    if checkpoint:
        cmd += ["--checkpoint", str(checkpoint)]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_progress(checkpoint: Path, chunks: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads((checkpoint / "state.json").read_text())["chunks_done"] >= chunks:
                return
        except (OSError, ValueError, KeyError):
            pass  # not written yet, or being replaced right now
        time.sleep(0.01)


@pytest.mark.parametrize("seed", SEEDS)
def test_driver_sigkill_then_resume_gives_exact_output(seed, data_dir, reference, tmp_path):
    rng = random.Random(seed)
    out, checkpoint = tmp_path / "out", tmp_path / "ckpt"
    # Seeds 0-2 die inside a checkpoint commit (sinks durable, state not yet replaced) or
    # between the "finalizing" state and the renames; the rest at a random moment.
    fault = {0: "checkpoint-commit:3", 1: "checkpoint-commit:17", 2: "finalize"}.get(seed)
    attempts = 0
    while True:
        attempts += 1
        assert attempts <= 6, "the run never finished"
        proc = _start(data_dir, out, checkpoint, fault=fault if attempts == 1 else None)
        if (attempts == 1 and fault is None) or (attempts == 2 and seed % 3 == 0):
            # Kill once the run is visibly under way (a random number of chunks already
            # checkpointed, plus a random extra moment), so every seed kills mid-run.
            _wait_for_progress(checkpoint, rng.randint(1, 25), proc)
            time.sleep(rng.uniform(0, 0.05))
            proc.send_signal(signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=300)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, stderr.decode()
        TALLY["killed"] += 1
        TALLY["resumes"] += 1
    report = json.loads(stdout.decode().split("REPORT ", 1)[1])
    assert report["rows_read"] == 12_000
    assert report["rows_read"] == report["rows_valid"] + report["rows_invalid"] + report["rows_filtered"]
    expected_out, expected_dlq, expected_chunks = reference
    # Chunks read but not yet written when the driver died are read again: counted once.
    assert (report["chunks"], report["bytes_read"]) == expected_chunks
    actual_out = (out / "out.jsonl").read_bytes()
    lost, duplicated = compare_outputs(expected_out, actual_out)
    TALLY["lost"] += lost
    TALLY["duplicated"] += duplicated
    assert (lost, duplicated) == (0, 0)
    assert actual_out == expected_out
    actual_dlq = [{**d, "source": None} for d in dlq_without_run_fields(out / "errors.jsonl")]
    assert actual_dlq == [{**d, "source": None} for d in expected_dlq]
    assert sorted(p.name for p in out.iterdir()) == ["errors.jsonl", "out.jsonl"]  # no partial files left


def test_zz_report_tally(capsys):
    """Prints the suite's counts (picked up in the issue note); runs after the seeds."""
    with capsys.disabled():
        print(f"\ndriver-crash suite: {TALLY}")
    assert TALLY["lost"] == 0 and TALLY["duplicated"] == 0
    assert TALLY["killed"] >= len(SEEDS)  # every seed really killed its driver at least once


def test_checkpoint_of_another_input_is_refused(data_dir, tmp_path):
    checkpoint = tmp_path / "ckpt"
    proc = _start(data_dir, tmp_path / "a", checkpoint)
    assert proc.wait(timeout=300) == 0
    other = tmp_path / "other"
    other.mkdir()
    write_items_csv(other / "items.csv", 100)
    proc = _start(other, tmp_path / "b", checkpoint)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert b"CheckpointError" in stderr and b"belongs to a different run" in stderr
