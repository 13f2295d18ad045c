"""Models and hooks whose records can get stuck, for the record_timeout tests (workers
import this module by name)."""

from __future__ import annotations

import re
import time

from pydantic import BaseModel, field_validator


class Row(BaseModel):
    id: int
    name: str

    @field_validator("name")
    @classmethod
    def _spin_or_backtrack(cls, value: str) -> str:
        if value == "spin":  # pure Python, never returns
            while True:
                pass
        if value == "backtrack":  # C code holding the interpreter lock for far longer than any timeout here
            re.match(r"(a+)+$", "a" * 64 + "b")
        return value


def sleep_on_hang(record: dict) -> dict:
    """A before_validate hook waiting on something that never answers (like a network call
    without a timeout), for the records named ``hang``."""
    if record.get("name") == "hang":
        time.sleep(3600)
    return record


def slow_but_fine(record: dict) -> dict:
    """A hook that is slow on the records named ``slow``, but finishes."""
    if record.get("name") == "slow":
        time.sleep(1.0)
    return record


def write_rows(path, rows: int, names: dict[int, str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,name\n")
        for i in range(1, rows + 1):
            f.write(f"{i},{names.get(i, 'ok')}\n")


def shell_out_on_hang(record: dict) -> dict:
    """A hook running a tool that never answers, for the records named ``hang``."""
    if record.get("name") == "hang":
        import subprocess

        subprocess.run(["sleep", "120.5"], check=False)
    return record
