"""Distributed mode keeps the single-driver mode's guarantees: stop signals, the error
budget, and checkpoint/resume by committed ranges. The signal and kill tests run a real
driver process (tests/ray/distributed_driver.py) on the session's Ray and signal it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

pytest.importorskip("ray", reason="ray is not installed: pip install 'flowschema[ray]' to run the Ray tests")

import flowschema_core as fs
from flowschema_ray import RayExecutor
from tests.helpers import dlq_without_run_fields, run_to_jsonl
from tests.ray.ray_models import Item, Slow, ranges_done

ROWS = 1500
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def inline_run(messy, tmp_path_factory):
    return run_to_jsonl(tmp_path_factory.mktemp("inline"), "inline", fs.CSVSource(messy[0]), Item, "inline", run_id="driver")


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _driver(ray_session, source, out, *extra):
    """Start the driver process on the session's Ray; returns it and its actors' PID file."""
    pids = os.path.join(out, "..", f"pids-{os.path.basename(out)}.json")
    address = ray_session.get_runtime_context().gcs_address
    env = {**os.environ, "PYTHONPATH": ROOT, "RAY_USAGE_STATS_ENABLED": "0"}
    command = [sys.executable, "-m", "tests.ray.distributed_driver", str(source), str(out), "--address", address, "--pids", pids, *extra]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, pids


def _actors_of(proc, pids):
    """The driver's actor PIDs, once it has written them."""
    assert _wait_for(lambda: os.path.exists(pids) or proc.poll() is not None), "the driver never started its actors"
    assert proc.poll() is None, proc.communicate()
    with open(pids) as f:
        return json.load(f)


def _parts(out):
    """Part files in the staging directories beside the outputs."""
    return [name for d in os.listdir(out) if d.startswith(".") and os.path.isdir(os.path.join(out, d))
            for name in os.listdir(os.path.join(out, d)) if name.endswith(".part")]


def _rows_settled(pids):
    """The records the driver has counted as settled (its progress, written beside the PID file)."""
    try:
        with open(f"{pids}.rows") as f:
            return json.load(f)
    except (OSError, ValueError):
        return 0


def _output_written(out):
    """Parts in the staging directories (distributed mode) or a temporary sink file (single-driver)."""
    return len(_parts(out)) >= 2 or any(n.startswith(".out.jsonl") and os.path.isfile(out / n) and os.path.getsize(out / n)
                                        for n in os.listdir(out))


@pytest.mark.parametrize(("signum", "mode"), [(signal.SIGTERM, "distributed"), (signal.SIGINT, "distributed"),
                                              (signal.SIGTERM, "single-driver")])
def test_a_stop_signal_stops_a_ray_run_cleanly(ray_session, messy, tmp_path, signum, mode):
    # The driver joins Ray inside the run (ray.init installs a SIGTERM handler of its own),
    # before the run in distributed mode, in executor.start() in the single-driver mode.
    out = tmp_path / "out"
    out.mkdir()
    proc, pids = _driver(ray_session, messy[0], out, "--slow", "0.003", *(["--single-driver"] if mode == "single-driver" else []))
    try:
        actors = _actors_of(proc, pids)
        # Parts on disk are not yet records the driver has counted (it settles a range when
        # its answer arrives): wait for both, so the stop lands mid-run with rows read.
        assert _wait_for(lambda: _output_written(out) and _rows_settled(pids) > 0), "no range or chunk was settled"
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["interrupted"] is True and report["stop_signal"] == signal.Signals(signum).name
    assert 0 < report["rows_read"] < ROWS and (report["bytes_through_driver"] == 0) == (mode == "distributed")
    assert os.listdir(out) == []  # nothing under the final names, no staging directory or temporary file
    assert _wait_for(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in actors)), \
        "the actors outlived the run"


def _budget_run(tmp_path, name, source, executor, max_invalid):
    """Run until the error budget stops it; the records read and invalid the error names, and the DLQ."""
    sink, errors = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.errors.jsonl"
    pipeline = fs.Pipeline(source, Item, fs.JSONLSink(sink), fs.JSONLSink(errors), executor=executor, max_invalid=max_invalid,
                           chunk_bytes="4KiB")
    with pytest.raises(fs.InvalidRecordsError) as caught:
        pipeline.run()
    assert not sink.exists()  # nothing under the sink's final name
    invalid, read = (int(n.replace(",", "")) for n in str(caught.value).split(": ", 1)[1].split(" of the ")[0:2] for n in [n.split()[0]])
    return read, invalid, dlq_without_run_fields(errors), str(caught.value)


@pytest.mark.parametrize("max_invalid", [10, "2%"])
def test_the_error_budget_stops_a_distributed_run_as_it_stops_a_single_driver_run(ray_session, messy, inline_run, tmp_path, max_invalid):
    full_dlq = inline_run[2]
    runs = {"single": _budget_run(tmp_path, "single", fs.CSVSource(messy[0]), "inline", max_invalid),
            "dist": _budget_run(tmp_path, "dist", fs.CSVSource(messy[0]), RayExecutor(num_actors=2, distributed=True, range_bytes="2KiB"),
                                max_invalid)}
    for read, invalid, dlq, message in runs.values():
        # The DLQ under its final name: every refused record of the first `read` records, in order.
        assert dlq == [r for r in full_dlq if r["record"] <= read] and len(dlq) == invalid
        if max_invalid == 10:
            assert invalid > 10
        else:
            assert read >= 1000 and invalid * 100 > 2 * read  # a share is judged from the 1000th record on
        assert read < ROWS and "over max_invalid=" in message and "Most common: " in message
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no staging left


def _resume(messy, out, checkpoint):
    """Run the driver's pipeline again in this process, with its checkpoint; the report and the outputs."""
    executor = RayExecutor(num_actors=2, distributed=True, range_bytes="2KiB")
    sink, errors = out / "out.jsonl", out / "out.errors.jsonl"
    pipeline = fs.Pipeline(fs.CSVSource(messy[0]), Item, fs.JSONLSink(sink), fs.JSONLSink(errors), executor=executor, hooks=[Slow(0)],
                           checkpoint=checkpoint, chunk_bytes="2KiB")  # as the driver's: the fingerprint has it
    report = pipeline.run()
    return report, sink.read_bytes(), dlq_without_run_fields(errors)


def test_a_stop_signal_keeps_a_checkpointed_runs_parts_for_the_resume(ray_session, messy, inline_run, tmp_path):
    out, checkpoint = tmp_path / "out", tmp_path / "ckpt"
    out.mkdir()
    proc, pids = _driver(ray_session, messy[0], out, "--slow", "0.003", "--checkpoint", str(checkpoint))
    try:
        _actors_of(proc, pids)
        assert _wait_for(lambda: ranges_done(checkpoint / "state.json") >= 2), "the checkpoint never listed a settled range"
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["interrupted"] is True and report["stop_signal"] == "SIGTERM"
    assert not (out / "out.jsonl").exists() and not (out / "out.errors.jsonl").exists()
    assert len(_parts(out)) >= 2  # kept in the stable staging directories
    saved = ranges_done(checkpoint / "state.json")
    single = fs.Pipeline(fs.CSVSource(messy[0]), Item, fs.JSONLSink(out / "out.jsonl"), fs.JSONLSink(out / "out.errors.jsonl"),
                         executor="inline", hooks=[Slow(0)], checkpoint=checkpoint, chunk_bytes="2KiB")
    with pytest.raises(fs.CheckpointError, match="differs in: mode"):  # ranges cannot be resumed as chunks
        single.run()
    resumed, data, dlq = _resume(messy, out, checkpoint)
    assert (data, dlq) == inline_run[1:] and resumed.rows_read == ROWS
    assert resumed.ranges_from_checkpoint >= saved  # the state saved on the way out lists every range settled by then


def test_a_killed_driver_resumes_by_committed_ranges(ray_session, messy, inline_run, tmp_path):
    out, checkpoint = tmp_path / "out", tmp_path / "ckpt"
    out.mkdir()
    state_file = checkpoint / "state.json"

    proc, pids = _driver(ray_session, messy[0], out, "--slow", "0.003", "--checkpoint", str(checkpoint))
    try:
        actors = _actors_of(proc, pids)
        assert _wait_for(lambda: ranges_done(state_file) >= 3), "the checkpoint never listed a settled range"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Ray stops a dead driver's actors; wait for that, so none still writes a part.
    assert _wait_for(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in actors))
    with open(state_file) as f:
        saved = json.load(f)
    assert saved["phase"] == "running" and not (out / "out.jsonl").exists()
    planned = len(saved["ranges"]["plan"])

    report, data, dlq = _resume(messy, out, checkpoint)
    sink, errors = out / "out.jsonl", out / "out.errors.jsonl"
    ref_report, ref_out, ref_dlq = inline_run
    assert data == ref_out
    assert dlq == ref_dlq
    assert {r["run_id"] for r in map(json.loads, errors.read_text().splitlines())} == {"driver"}  # the first run's id
    assert (report.rows_read, report.rows_valid, report.rows_invalid, report.rows_filtered, report.invalid_by_stage) == \
        (ref_report.rows_read, ref_report.rows_valid, ref_report.rows_invalid, ref_report.rows_filtered, ref_report.invalid_by_stage)
    assert report.chunks == planned and 3 <= report.ranges_from_checkpoint < planned
    assert any(note.startswith("resumed from checkpoint") for note in report.notes)
    assert sorted(os.listdir(out)) == ["out.errors.jsonl", "out.jsonl"]  # staging removed once committed
    with open(state_file) as f:
        assert json.load(f)["phase"] == "done"
    again = fs.Pipeline(fs.CSVSource(messy[0]), Item, fs.JSONLSink(sink), fs.JSONLSink(errors),
                        executor=RayExecutor(num_actors=2, distributed=True), hooks=[Slow(0)], checkpoint=checkpoint,
                        chunk_bytes="2KiB").run()
    assert again.rows_read == report.rows_read and sink.read_bytes() == ref_out  # a done checkpoint: nothing runs again
