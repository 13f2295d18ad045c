"""Models, hooks and data for the Ray tests (importable by the actors through sys.path)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import flowschema_core as fs
from tests.integration.pipeline_models import Item, Slow  # noqa: F401 - shared with the process tests


class ExitOnMarker(fs.Hook):
    """Kills its actor process (``os._exit(1)``) on every record whose name is the marker."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def before_validate(self, record):
        if record.get("name") == self.marker:
            os._exit(1)
        return record


class BrokenSetup(fs.Hook):
    def setup(self) -> None:
        raise RuntimeError("cannot load the lookup table")


def write_messy_csv(path, rows: int, *, poison: int | None = None) -> dict[str, int]:
    """An items CSV with ragged rows, invalid values, quoted newlines and non-ASCII text.

    Returns the expected counts by outcome. Record ``poison`` (1-based) gets the name
    ``POISON`` (a valid row otherwise).
    """
    counts = {"valid": 0, "parse": 0, "validate": 0}
    lines = ["id,name,price,note"]
    for i in range(1, rows + 1):
        if i == poison:
            lines.append(f"{i},POISON,1.00,")
            counts["valid"] += 1
        elif i % 97 == 0:
            lines.append(f"{i},ragged {i}")
            counts["parse"] += 1
        elif i % 89 == 0:
            lines.append(f"{i},bad price {i},12;5,")
            counts["validate"] += 1
        elif i % 83 == 0:
            lines.append(f"-{i},negative id,1.00,")
            counts["validate"] += 1
        elif i % 7 == 0:
            lines.append(f'{i},"item, {i}",{i % 500}.25,"line one\nline two ""quoted"" café ✓"')
            counts["valid"] += 1
        else:
            lines.append(f"{i},item {i},{i % 1000}.{i % 100:02d},")
            counts["valid"] += 1
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines) + "\n")
    return counts


class FailRun(fs.Hook):
    """Raises what is no record's fault (not an ``Exception``) on the marker record: the run fails."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def before_validate(self, record):
        if record.get("name") == self.marker:
            raise GeneratorExit("not a record's problem")
        return record


def ranges_done(state_file) -> int:
    """How many ranges a distributed checkpoint's state lists as settled (0 before its first save)."""
    try:
        with open(state_file) as f:
            return len(json.load(f)["ranges"]["done"])
    except (OSError, ValueError, KeyError):
        return 0


def ctrl_c_after_ranges(state_file, count: int) -> threading.Thread:
    """A started thread that sends this process SIGINT (Ctrl-C) once the checkpoint at
    ``state_file`` lists ``count`` settled ranges (or after 120 s): the run stops, keeping
    its parts for the resume. Join it after the run."""

    def interrupt() -> None:
        deadline = time.monotonic() + 120
        while ranges_done(state_file) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    return thread
