"""What the examples print about their dead-letter queue: one line a refused record, with
its stage, field, error type and message. Imported by the examples (run from the repository
root as ``python examples/NAME.py``, this folder is on ``sys.path``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any


def print_dlq(path: str, where: Callable[[dict[str, Any]], str] = lambda rec: f"record {rec['record']}",
              message: Callable[[str], str] = lambda msg: msg) -> None:
    """Print the DLQ at ``path``: ``where`` says which record (record number by default),
    ``message`` may shorten the first error's message."""
    print(f"dead-letter queue: {os.path.relpath(path)}")
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            err = rec["errors"][0]
            field = ".".join(str(p) for p in err.get("loc") or []) or "-"
            print(f"  {where(rec)}: stage={rec['stage']} field={field} type={err['type']}: {message(err['msg'])}")
