"""A sink that fails mid-run (disk full): the run stops with a clear error, keeps its
checkpoint, and the next run finishes with output equal to an uninterrupted run's."""

from __future__ import annotations

import errno

import pytest

import flowschema_core as fs
from flowschema_core.sinks import base as sink_base
from tests.helpers import dlq_without_run_fields
from tests.integration.pipeline_models import Item, write_items_csv


class DiskFullAfter:
    """A file object that raises ENOSPC once ``budget`` bytes were written through it."""

    def __init__(self, file, budget: int) -> None:
        self._file, self._budget = file, budget

    def write(self, data):
        self._budget -= len(data)
        if self._budget < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._file.write(data)

    def __getattr__(self, name):
        return getattr(self._file, name)


def _pipeline(src, out, checkpoint):
    return fs.Pipeline(fs.CSVSource(src), Item, fs.JSONLSink(out / "o.jsonl"), fs.JSONLSink(out / "e.jsonl"),
                       executor="inline", chunk_bytes="4KiB", checkpoint=checkpoint, checkpoint_interval=0)


@pytest.mark.parametrize("budget", [1, 50_000, 200_000])
def test_disk_full_then_resume(tmp_path, monkeypatch, budget):
    src = tmp_path / "items.csv"
    write_items_csv(src, 5_000, bad_every=25)
    ref = tmp_path / "ref"
    fs.Pipeline(fs.CSVSource(src), Item, fs.JSONLSink(ref / "o.jsonl"), fs.JSONLSink(ref / "e.jsonl"), executor="inline").run()

    out, checkpoint = tmp_path / "out", tmp_path / "ckpt"
    original_init = sink_base.AtomicFile.__init__

    def failing_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if self.path.endswith("o.jsonl"):
            self.file = DiskFullAfter(self.file, budget)

    monkeypatch.setattr(sink_base.AtomicFile, "__init__", failing_init)
    with pytest.raises(fs.SinkError, match="No space left on device"):
        _pipeline(src, out, checkpoint).run()
    assert not (out / "o.jsonl").exists()
    monkeypatch.setattr(sink_base.AtomicFile, "__init__", original_init)

    report = _pipeline(src, out, checkpoint).run()
    assert report.balanced and report.rows_read == 5_000
    assert (out / "o.jsonl").read_bytes() == (ref / "o.jsonl").read_bytes()
    strip = lambda rows: [{**r, "source": None} for r in rows]  # noqa: E731
    assert strip(dlq_without_run_fields(out / "e.jsonl")) == strip(dlq_without_run_fields(ref / "e.jsonl"))


def test_csv_outputs_resume_with_one_header_and_full_dlq_rows(tmp_path, monkeypatch):
    import csv

    src = tmp_path / "items.csv"
    write_items_csv(src, 4_000, bad_every=25)

    def pipeline(out, checkpoint=None):
        return fs.Pipeline(fs.CSVSource(src), Item, fs.CSVSink(out / "o.csv"), fs.CSVSink(out / "e.csv"),
                           executor="inline", chunk_bytes="4KiB", checkpoint=checkpoint, checkpoint_interval=0)

    pipeline(tmp_path / "ref").run()
    original_init = sink_base.AtomicFile.__init__

    def failing_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if self.path.endswith("o.csv"):
            self.file = DiskFullAfter(self.file, 60_000)

    monkeypatch.setattr(sink_base.AtomicFile, "__init__", failing_init)
    with pytest.raises(fs.SinkError):
        pipeline(tmp_path / "out", tmp_path / "ckpt").run()
    monkeypatch.setattr(sink_base.AtomicFile, "__init__", original_init)
    pipeline(tmp_path / "out", tmp_path / "ckpt").run()

    assert (tmp_path / "out" / "o.csv").read_bytes() == (tmp_path / "ref" / "o.csv").read_bytes()

    def dlq(path):
        with open(path, newline="") as f:
            return [{k: v for k, v in row.items() if k not in ("run_id", "ts", "source")} for row in csv.DictReader(f)]

    resumed, reference = dlq(tmp_path / "out" / "e.csv"), dlq(tmp_path / "ref" / "e.csv")
    assert resumed == reference and len(reference) == 319
    assert all(row["stage"] for row in resumed)
