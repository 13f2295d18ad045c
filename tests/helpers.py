"""Helpers shared by the test suites: running a pipeline and reading what it wrote."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import flowschema_core as fs


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def dlq_without_run_fields(path: Path) -> list[dict]:
    """DLQ records without the fields that differ between runs (``run_id``, ``ts``)."""
    with open(path, "rb") as f:
        return dlq_data_without_run_fields(f.read())


def dlq_data_without_run_fields(data: bytes, *, also: tuple[str, ...] = ()) -> list[dict]:
    """As :func:`dlq_without_run_fields`, of a DLQ's bytes (an object read from a store);
    ``also``: more fields to leave out (``source``, when the runs read different places)."""
    drop = ("run_id", "ts", *also)
    return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in data.splitlines() if line.strip()]


def compare_outputs(expected_out: bytes, actual_out: bytes) -> tuple[int, int]:
    """Return (records lost, records duplicated) between two JSONL outputs."""
    want = Counter(expected_out.splitlines())
    got = Counter(actual_out.splitlines())
    return sum((want - got).values()), sum((got - want).values())


def run_to_jsonl(tmp_path: Path, name: str, source: fs.Source, model: type[BaseModel], executor: Any, **kwargs: Any) -> tuple[fs.RunReport, bytes, list[dict]]:
    """Run into ``NAME.jsonl`` + ``NAME.errors.jsonl``; return the report, the sink's
    bytes and the DLQ (without run fields). The accounting identity must hold."""
    sink, errors = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.errors.jsonl"
    report = fs.Pipeline(source, model, fs.JSONLSink(sink), fs.JSONLSink(errors), executor=executor, **kwargs).run()
    assert report.balanced, report.to_dict()
    return report, sink.read_bytes(), dlq_without_run_fields(errors)


def run_with_dlq(source: fs.Source, model: type[BaseModel], sink: fs.Sink, tmp_path: Path, **kwargs: Any) -> tuple[fs.RunReport, list[dict]]:
    """Run into ``sink`` (inline by default) with a JSONL DLQ; return the report and the DLQ."""
    errors = tmp_path / f"errors-{uuid.uuid4().hex[:6]}.jsonl"
    kwargs.setdefault("executor", "inline")
    kwargs.setdefault("sample_interval", 60)
    report = fs.Pipeline(source=source, model=model, sink=sink, errors=fs.JSONLSink(errors), **kwargs).run()
    assert report.balanced, report.to_dict()
    return report, read_jsonl(errors)


@contextlib.contextmanager
def cpu_load(processes: int | None = None) -> Iterator[None]:
    """Busy-loop ``processes`` (default: one per CPU) other processes while the block runs:
    the load under which scheduling races (a death charged to the wrong chunk) show."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes or os.cpu_count() or 1)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def write_messy_parquet(path: str | os.PathLike[str], rows: int, *, row_group_size: int, poison: int | None = None) -> list[int]:
    """An items Parquet file (``id, name, price, note``: ``tests.integration.pipeline_models.Item``)
    of several row groups, with nulls (a null note is valid, a null id or name is not),
    invalid prices, negative ids and non-ASCII text. Record ``poison`` (1-based) gets the
    name ``poison-x``. Returns the 1-based numbers of the records ``Item`` refuses."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids: list[int | None] = []
    names: list[str | None] = []
    prices: list[str] = []
    notes: list[str | None] = []
    bad = []
    for i in range(1, rows + 1):
        ids.append(None if i % 11 == 0 else -i if i % 19 == 0 else i)
        names.append("poison-x" if i == poison else None if i % 17 == 0 else f"item {i} café ✓" if i % 3 == 0 else f"item {i}")
        prices.append("12;5" if i % 13 == 0 else f"{i % 1000}.{i % 100:02d}")
        notes.append(None if i % 2 else f"note {i}")
        if i % 11 == 0 or i % 19 == 0 or i % 17 == 0 or i % 13 == 0:
            bad.append(i)
    table = pa.table({"id": pa.array(ids, pa.int64()), "name": names, "price": prices, "note": notes})
    pq.write_table(table, path, row_group_size=row_group_size)
    return bad
