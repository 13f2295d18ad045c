"""Shared helpers for the unit tests: run a pipeline inline and read back what it wrote."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

import flowschema_core as fs

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"


class AnyRecord(BaseModel):
    """Accepts any object and keeps every key: the sink then shows what the source parsed."""

    model_config = ConfigDict(extra="allow")


def read_jsonl(path: pathlib.Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class Run:
    """The outcome of one inline pipeline run: report, valid rows, DLQ records."""

    def __init__(self, report: fs.RunReport, rows: list[dict[str, Any]], dlq: list[dict[str, Any]]) -> None:
        self.report, self.rows, self.dlq = report, rows, dlq


@pytest.fixture
def run_pipeline(tmp_path: pathlib.Path):
    """Return ``run(source, model=AnyRecord, **pipeline_kwargs) -> Run`` (inline executor)."""
    counter = iter(range(1_000_000))

    def run(source: fs.Source, model: type[BaseModel] = AnyRecord, **kwargs: Any) -> Run:
        k = next(counter)
        out, err = tmp_path / f"out{k}.jsonl", tmp_path / f"err{k}.jsonl"
        kwargs.setdefault("executor", "inline")
        kwargs.setdefault("sample_interval", 60)
        report = fs.Pipeline(source=source, model=model, sink=fs.JSONLSink(out), errors=fs.JSONLSink(err), **kwargs).run()
        assert report.balanced, report.to_dict()
        assert report.rows_invalid == sum(report.invalid_by_stage.values())
        rows, dlq = read_jsonl(out), read_jsonl(err)
        assert len(rows) == report.rows_valid
        assert len(dlq) == report.rows_invalid
        return Run(report, rows, dlq)

    return run
