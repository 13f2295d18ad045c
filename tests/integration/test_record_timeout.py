"""record_timeout: a record that never finishes goes to the DLQ with stage ``worker``, its
worker is replaced, every other record is written once, and the stuck record is found
directly (one timeout per stuck record, no halving of its chunk)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import flowschema_core as fs
from flowschema_core import codec, dlq
from flowschema_core.watchdog import Beacon, Watch, mark_stuck
from tests.helpers import read_jsonl
from tests.integration import stuck_models
from tests.integration.stuck_models import Row, write_rows

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(tmp_path, names, *, rows=3000, hooks=(), timeout=3.0, chunk_bytes="8KiB", workers=2):
    src = tmp_path / "in.csv"
    write_rows(src, rows, names)
    out, dlq = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl"
    report = fs.Pipeline(fs.CSVSource(src), Row, fs.JSONLSink(out), fs.JSONLSink(dlq), hooks=hooks, chunk_bytes=chunk_bytes,
                         executor=fs.MultiprocessingExecutor(workers), record_timeout=timeout).run()
    return report, read_jsonl(out), read_jsonl(dlq)


def test_stuck_records_go_to_the_dlq_and_every_other_record_is_written_once(tmp_path):
    # A pure-Python spin, a regex holding the interpreter lock, a hook asleep forever;
    # two of them in one chunk, one the chunk's first record and one its last.
    stuck = {1: "spin", 7: "hang", 9: "backtrack", 1500: "spin", 3000: "hang"}
    report, valid, dead = _run(tmp_path, stuck, hooks=[stuck_models.sleep_on_hang])
    assert report.balanced and report.rows_read == 3000
    assert sorted(r["record"] for r in dead) == sorted(stuck)
    for record in dead:
        assert record["stage"] == "worker"
        assert [e["type"] for e in record["errors"]] == ["record_timeout"]
        assert "record_timeout=3 s" in record["errors"][0]["msg"]
        assert record["raw"] == {"id": str(record["record"]), "name": stuck[record["record"]]}
        assert record["line"] == record["record"] + 1
    ids = [row["id"] for row in valid]
    assert sorted(ids) == [i for i in range(1, 3001) if i not in stuck]  # each once: no loss, no duplicate
    assert ids == sorted(ids)  # source order kept
    # Found directly: one replacement per stuck record, no chunk split, no crash retry.
    assert report.record_timeouts == len(stuck)
    assert report.worker_restarts == 0 and report.retries == 0


def test_a_slow_record_under_the_timeout_is_valid(tmp_path):
    report, valid, dead = _run(tmp_path, {5: "slow", 6: "slow"}, rows=50, hooks=[stuck_models.slow_but_fine], timeout=20)
    assert dead == [] and len(valid) == 50 and report.record_timeouts == 0


def test_the_cli_flag(tmp_path):
    src = tmp_path / "in.csv"
    write_rows(src, 200, {100: "spin"})
    proc = subprocess.run([sys.executable, "-m", "flowschema_core", "run", str(src), "--model", "tests.integration.stuck_models:Row",
                           "--sink", str(tmp_path / "out.jsonl"), "--errors", str(tmp_path / "dlq.jsonl"), "--workers", "1",
                           "--record-timeout", "3", "--report", str(tmp_path / "report.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ran longer than record_timeout=3 s" in proc.stderr and "Traceback" not in proc.stderr
    assert [r["record"] for r in read_jsonl(tmp_path / "dlq.jsonl")] == [100]
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 199
    assert json.loads((tmp_path / "report.json").read_text())["record_timeouts"] == 1


@pytest.mark.parametrize("bad", [0, -1, "10", True, float("nan")])
def test_bad_timeouts_are_config_errors(tmp_path, bad):
    with pytest.raises(fs.ConfigError, match="record_timeout must be a number of seconds"):
        fs.Pipeline(fs.CSVSource(tmp_path / "x.csv"), Row, fs.JSONLSink(tmp_path / "o.jsonl"), executor="process", record_timeout=bad)


def test_an_executor_that_cannot_stop_a_record_says_so(tmp_path):
    with pytest.raises(fs.ConfigError, match=r"record_timeout needs an executor .* InlineExecutor .* executor='process'"):
        fs.Pipeline(fs.CSVSource(tmp_path / "x.csv"), Row, fs.JSONLSink(tmp_path / "o.jsonl"), executor="inline", record_timeout=5)


def test_the_beacon_says_which_record_and_the_watch_waits_for_the_timeout():
    watch = Watch()
    try:
        beacon = Beacon(os.dup(watch.fd))
        assert watch.stuck(0.0) is None  # nothing yet: between records
        beacon.next_chunk()
        beacon.on_record(41)
        assert watch.stuck(0.0) is None  # first sight of this record starts its clock
        assert watch.stuck(0.0) == (1, 41)
        assert watch.stuck(3600.0) is None  # not for that long
        beacon.on_record(42)
        assert watch.stuck(0.0) is None
        beacon.between_records()
        watch.stuck(0.0)
        assert watch.stuck(0.0) is None  # between records is never stuck
        beacon.next_chunk()
        beacon.on_record(0)
        watch.stuck(0.0)
        assert watch.stuck(0.0) == (2, 0)
    finally:
        watch.close()


def test_a_marked_record_is_not_run():
    from flowschema_core.kinds import rows
    from flowschema_core.worker import ChunkProcessor, WorkerSpec

    blob = codec.encode(rows.chunk([{"id": 1, "name": "ok"}, {"id": 2, "name": "spin"}, {"id": 3, "name": "ok"}]))[0]
    watch = Watch()
    try:
        processor = ChunkProcessor(WorkerSpec(Row, record_timeout=1))
        processor.beacon = Beacon(os.dup(watch.fd))
        result = codec.decode(processor.process(mark_stuck(blob, 1, "stuck here")))
    finally:
        watch.close()
    assert result["n"] == 3 and result["valid"] == 2
    errors = [dlq.opened(e) for e in result["errors"]]
    assert [(e["i"], e["stage"], e["errors"][0]["type"], e["errors"][0]["msg"]) for e in errors] == [(1, "worker", "record_timeout", "stuck here")]


def test_a_record_stuck_in_a_subprocess_is_stopped_with_it(tmp_path):
    # The tool's process once inherited the worker's result pipe: the driver saw the
    # worker's death only when the tool ended (120 s here), and the tool outlived the run.
    import time

    import psutil

    started = time.monotonic()
    report, valid, dead = _run(tmp_path, {5: "hang"}, rows=20, hooks=[stuck_models.shell_out_on_hang], workers=1)
    elapsed = time.monotonic() - started
    assert [r["record"] for r in dead] == [5] and len(valid) == 19 and report.record_timeouts == 1
    assert elapsed < 90, f"the run waited for the stuck tool ({elapsed:.0f} s)"  # a hang check, not a speed one: ~5 s vs 120 s
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "120.5"]]  # the tool did not outlive it
