"""The pipeline end to end on real worker processes: exact output, crashes, poison records."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

import flowschema_core as fs
from tests.helpers import run_to_jsonl
from tests.integration.pipeline_models import DropEven, Item, KillOnce, Poison, Slow, write_items_csv


def _run(tmp_path, name, source, executor, **kwargs):
    return run_to_jsonl(tmp_path, name, source, Item, executor, **kwargs)


@pytest.fixture(scope="module")
def messy_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "items.csv"
    write_items_csv(path, 30_000, bad_every=50)
    return path


@pytest.fixture(scope="module")
def inline_run(messy_csv, tmp_path_factory):
    return _run(tmp_path_factory.mktemp("inline"), "inline", fs.CSVSource(messy_csv), "inline", chunk_bytes="32KiB")


def test_process_executor_output_equals_inline(messy_csv, inline_run, tmp_path):
    report, out, dlq = _run(tmp_path, "proc", fs.CSVSource(messy_csv), fs.MultiprocessingExecutor(workers=2), chunk_bytes="32KiB")
    ref_report, ref_out, ref_dlq = inline_run
    assert out == ref_out
    assert dlq == ref_dlq
    assert report.rows_read == 30_000
    assert report.invalid_by_stage == {"parse": 599, "validate": 600} == ref_report.invalid_by_stage
    assert report.chunks > 10


def test_dlq_records_carry_record_and_line_numbers(inline_run, messy_csv):
    _, _, dlq = inline_run
    lines = messy_csv.read_text().split("\n")
    ragged = [d for d in dlq if d["stage"] == "parse"]
    assert ragged[0]["record"] == 51 and ragged[0]["raw_text"] == "51,item 51"
    for d in ragged[:20]:
        assert lines[d["line"] - 1] == d["raw_text"]
    invalid = [d for d in dlq if d["stage"] == "validate"]
    assert invalid[0]["record"] == 50
    assert invalid[0]["errors"][0]["loc"] == ["price"]
    assert invalid[0]["raw"]["price"] == "-50.5"


def test_worker_killed_mid_chunk_is_replaced_and_chunk_retried(messy_csv, inline_run, tmp_path):
    hook = KillOnce("12345", str(tmp_path / "killed"))
    report, out, dlq = _run(tmp_path, "kill", fs.CSVSource(messy_csv), fs.MultiprocessingExecutor(workers=2), chunk_bytes="32KiB", hooks=[hook])
    assert (tmp_path / "killed").exists()
    assert report.worker_restarts == 1 and report.retries == 1
    assert out == inline_run[1]
    assert dlq == inline_run[2]


def test_external_sigkill_of_random_workers_loses_nothing(messy_csv, inline_run, tmp_path):
    executor = fs.MultiprocessingExecutor(workers=2)
    kills = []

    def killer():
        deadline = time.monotonic() + 30
        while len(kills) < 3 and time.monotonic() < deadline:
            time.sleep(0.4)
            pids = executor.worker_pids()
            if pids:
                try:
                    os.kill(pids[len(kills) % len(pids)], signal.SIGKILL)
                    kills.append(pids[0])
                except ProcessLookupError:
                    pass

    thread = threading.Thread(target=killer)
    thread.start()
    report, out, dlq = _run(tmp_path, "chaos", fs.CSVSource(messy_csv), executor, chunk_bytes="8KiB", hooks=[Slow(0.00005)])
    thread.join()
    assert kills, "the killer never found a worker"
    assert report.worker_restarts >= 1
    assert out == inline_run[1]
    assert dlq == inline_run[2]


@pytest.mark.parametrize("how", ["exit", "segfault"])
def test_poison_record_is_isolated_into_the_dlq(tmp_path, how):
    path = tmp_path / "poison.csv"
    write_items_csv(path, 2_000, poison={777})
    report, out, dlq = _run(tmp_path, "p", fs.CSVSource(path), fs.MultiprocessingExecutor(workers=2), chunk_bytes="16KiB", hooks=[Poison(how)])
    assert report.rows_read == 2_000 and report.rows_valid == 1_999
    assert [d["stage"] for d in dlq] == ["worker"]
    # every 7th record holds a quoted newline, so record 777 starts on line 1 + 777 + 776 // 7
    assert dlq[0]["record"] == 777 and dlq[0]["line"] == 888
    assert path.read_text().split("\n")[887].startswith('777,"poison-777')
    # The worker's beacon says which record it died on: after max_attempts deaths on that
    # record, it alone is marked, and the rest of its chunk runs. Halving the chunk down to
    # it took about 14 deaths here (and 30+ in bigger chunks, out of max_restarts=100).
    assert dlq[0]["raw"] == {"id": "777", "name": "poison-777, with comma", "price": "777.25", "note": "two\nlines"}
    assert dlq[0]["errors"][0]["type"] == "worker_crashed"
    assert ("SIGSEGV" if how == "segfault" else "exit code 3") in dlq[0]["errors"][0]["msg"]
    assert (report.worker_restarts, report.retries) == (2, 1)
    ids = [json.loads(line)["id"] for line in out.splitlines()]
    assert ids == [i for i in range(1, 2_001) if i != 777]


def test_each_poison_record_costs_max_attempts_deaths_not_a_halving_each(tmp_path):
    # Halving a chunk down to its poison record cost ~14 deaths each here: three of them
    # would spend a restart budget of 8 (and five, the default budget of 100 in a large file).
    path = tmp_path / "poison3.csv"
    write_items_csv(path, 3_000, poison={10, 1500, 2999})
    report, out, dlq = _run(tmp_path, "p3", fs.CSVSource(path), fs.MultiprocessingExecutor(workers=2, max_restarts=8), chunk_bytes="64KiB",
                            hooks=[Poison()])
    assert [(d["record"], d["stage"], d["errors"][0]["type"]) for d in dlq] == [(n, "worker", "worker_crashed") for n in (10, 1500, 2999)]
    assert report.worker_restarts == 6 and report.rows_valid == 2_997
    assert [json.loads(line)["id"] for line in out.splitlines()] == [i for i in range(1, 3_001) if i not in (10, 1500, 2999)]


def test_workers_dying_on_every_record_stop_with_a_clear_error(tmp_path):
    path = tmp_path / "allpoison.csv"
    write_items_csv(path, 50, poison=set(range(1, 51)))
    executor = fs.MultiprocessingExecutor(workers=2, max_restarts=5)
    with pytest.raises(fs.WorkerPoolError, match=r"max_restarts=5\)"):
        fs.Pipeline(fs.CSVSource(path), Item, fs.JSONLSink(tmp_path / "o.jsonl"), executor=executor, hooks=[Poison()]).run()
    assert not (tmp_path / "o.jsonl").exists()
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_filtered_records_are_counted(messy_csv, tmp_path):
    report, out, _ = _run(tmp_path, "f", fs.CSVSource(messy_csv), "process", hooks=[DropEven()])
    assert report.rows_filtered > 10_000
    assert all(json.loads(line)["id"] % 2 == 1 for line in out.splitlines())


def test_backpressure_keeps_bytes_in_flight_within_budget(messy_csv, tmp_path):
    budget = 64 * 1024
    report, _, _ = _run(tmp_path, "bp", fs.CSVSource(messy_csv), fs.MultiprocessingExecutor(workers=2),
                        chunk_bytes="16KiB", max_bytes_in_flight=budget, hooks=[Slow(0.00002)])
    assert 0 < report.peak_bytes_in_flight <= budget
    assert report.backpressure_waits > 0
    assert report.rows_read == 30_000


def test_worker_that_cannot_start_is_a_clear_error(tmp_path):
    class BrokenSetup(fs.Hook):
        def setup(self):
            raise RuntimeError("lookup table missing")

    path = tmp_path / "x.csv"
    write_items_csv(path, 10)
    with pytest.raises(fs.WorkerPoolError, match="lookup table missing"):
        fs.Pipeline(fs.CSVSource(path), Item, fs.JSONLSink(tmp_path / "o.jsonl"), executor="process", hooks=[BrokenSetup()]).run()


def test_bad_file_mid_run_leaves_no_output(tmp_path):
    path = tmp_path / "trunc.json"
    path.write_text("[" + ",".join(json.dumps({"id": i, "name": "n", "price": "1"}) for i in range(1, 5000)) + ',{"id": 5000, "na')
    with pytest.raises(fs.SourceError, match=r"trunc\.json"):
        fs.Pipeline(fs.JSONSource(path), Item, fs.JSONLSink(tmp_path / "o.jsonl"), executor="process", chunk_bytes="8KiB").run()
    assert sorted(os.listdir(tmp_path)) == ["trunc.json"]


def test_shutdown_with_wait_lets_submitted_chunks_finish(tmp_path):
    """concurrent.futures semantics: shutdown(wait=True) finishes what was submitted."""
    from flowschema_core import codec
    from flowschema_core.kinds import rows
    from flowschema_core.worker import WorkerSpec

    executor = fs.MultiprocessingExecutor(workers=1)
    executor.start(WorkerSpec(Item))
    blob, _ = codec.encode(rows.chunk([{"id": i, "name": "n", "price": "1"} for i in range(1, 200)]))
    futures = [executor.submit(blob) for _ in range(6)]
    executor.shutdown(wait=True)
    assert all(codec.decode(f.result(timeout=0))["valid"] == 199 for f in futures)
