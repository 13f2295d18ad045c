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
    return [{k: v for k, v in record.items() if k not in ("run_id", "ts")} for record in read_jsonl(path)]


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
