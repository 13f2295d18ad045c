"""Shared by the fault suites: reference outputs and exact comparisons."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def dlq_without_run_fields(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [{k: v for k, v in json.loads(line).items() if k not in ("run_id", "ts")} for line in f]


def compare_outputs(expected_out: bytes, actual_out: bytes) -> tuple[int, int]:
    """Return (records lost, records duplicated) between two JSONL outputs."""
    want = Counter(expected_out.splitlines())
    got = Counter(actual_out.splitlines())
    lost = sum((want - got).values())
    duplicated = sum((got - want).values())
    return lost, duplicated
