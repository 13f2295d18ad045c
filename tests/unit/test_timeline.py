"""The run's timeline: a start and an end sample always, fast sampling while a run is young,
at most MAX_SAMPLES for any length, and RSS of the real process tree."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from flowschema_core.timeline import FAST_START, ProcessTree, Sampler, tree_rss


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_a_run_too_short_for_one_interval_still_has_a_start_and_an_end_sample():
    rows = [0]
    sampler = Sampler(60.0, lambda: 5, lambda: rows[0]).start()
    rows[0] = 100
    sampler.stop()
    sampler.stop()  # twice is fine
    assert len(sampler.samples) == 2
    first, last = sampler.samples
    assert first["rows_done"] == 0 and last["rows_done"] == 100
    assert first["t"] <= last["t"] and first["bytes_in_flight"] == 5
    assert first["rss"] > 0 and sampler.peak_rss >= max(first["rss"], last["rss"])


def test_a_young_run_is_sampled_many_times_faster_than_the_interval():
    sampler = Sampler(0.25, lambda: 0, lambda: 0)
    assert sampler.next_gap() == pytest.approx(0.25 / FAST_START, rel=0.5)  # just started: the fastest
    sampler.start()
    try:
        # Half a second of run: the steady 0.25 s interval alone would give 2 samples.
        time.sleep(0.5)
    finally:
        sampler.stop()
    assert len(sampler.samples) >= 8, [s["t"] for s in sampler.samples]
    times = [s["t"] for s in sampler.samples]
    assert times == sorted(times)


def test_a_long_run_keeps_a_bounded_evenly_thinned_timeline():
    ticks = [0]
    lock = threading.Lock()

    def rows_done() -> int:
        with lock:
            ticks[0] += 1
            return ticks[0]

    sampler = Sampler(0.001, lambda: 0, rows_done, max_samples=16).start()
    try:
        wait_for(lambda: sampler.interval >= 0.008)  # thinned three times at least
    finally:
        sampler.stop()
    samples = sampler.samples
    assert 8 <= len(samples) <= 17
    assert samples[0]["rows_done"] == 1  # the first sample survives thinning
    assert samples[-1]["rows_done"] == ticks[0]  # and so does the last
    done = [s["rows_done"] for s in samples]
    assert done == sorted(done) and len(set(done)) == len(done)
    # After thinning, kept samples are every 2^k-th sample taken: the later ones, taken
    # at the slower pace, are one apart again, the older ones 2, 4, 8... apart.
    assert done[1] - done[0] >= 8


def test_process_tree_counts_a_child_that_holds_memory_and_skips_it_once_ended():
    fresh = ProcessTree(refresh=0.0)  # lists the tree at every read
    cached = ProcessTree(refresh=3600.0)  # lists it once, at its first read
    alone = fresh.rss()
    child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(80 << 20); b[::4096] = b'x' * len(b[::4096]); "
                              "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert fresh.rss() >= alone + (60 << 20)
        assert cached.rss() >= alone + (60 << 20)
        assert tree_rss() >= alone + (60 << 20)  # the uncached function agrees
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()  # type: ignore[union-attr]
    # The cached tree still holds the ended child: its RSS can no longer be read and is skipped.
    assert 0 < cached.rss() < alone + (40 << 20)


def test_a_short_pipeline_run_gets_a_timeline_worth_plotting(tmp_path):
    import flowschema_core as fs
    from tests.integration.pipeline_models import Item, Slow, write_items_csv

    write_items_csv(tmp_path / "items.csv", 1_000)
    # About half a second of work (0.5 ms a record): the default 0.25 s interval alone
    # would give two or three samples.
    report = fs.Pipeline(fs.CSVSource(tmp_path / "items.csv"), Item, fs.JSONLSink(tmp_path / "out.jsonl"), executor="inline",
                         chunk_bytes="4KiB", hooks=[Slow(0.0005)]).run()
    samples = report.timeline
    assert len(samples) >= 10, [s["t"] for s in samples]
    assert samples[0]["rows_done"] == 0 and samples[-1]["rows_done"] == 1_000
    assert len({s["rows_done"] for s in samples}) >= 5  # progress shows between start and end
