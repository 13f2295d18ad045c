"""The benchmark harness shared by ``benchmarks/``: each contender in a fresh interpreter,
its whole process tree's peak RSS sampled from outside, results as a table.

::

    child = [sys.executable, __file__, "--child", ...]      # the benchmark's own child mode
    result = harness.run_child(child)                        # {..., "wall_s", "cpu_s", "peak_rss"}
    # in the child: harness.report_result({...}) after the work, timed by harness.timed()
    print(harness.table(["contender", "rows/s"], rows))

The sampler is a separate process (``python harness.py --sample PID``): sampling from a
thread of the measured process would add its own memory and CPU to what it measures.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "build", "bench")
RESULT = "RESULT "


def orders_csv(rows: int, bad_fraction: float = 0.02, seed: int = 0) -> tuple[str, dict[str, int]]:
    """The ``rows``-row orders CSV with ``bad_fraction`` bad rows, generated once into
    build/bench and reused; its path and its bad-row counts by kind."""
    sys.path.insert(0, ROOT)
    from examples.generate_orders import generate_orders_csv

    os.makedirs(BENCH_DIR, exist_ok=True)
    path = os.path.join(BENCH_DIR, f"orders_{rows}_{bad_fraction * 100:g}pct.csv")
    meta_path = path + ".meta.json"
    wanted = {"rows": rows, "bad_fraction": bad_fraction, "seed": seed}
    if os.path.exists(path) and os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if {k: meta.get(k) for k in wanted} == wanted and meta.get("size") == os.path.getsize(path):
            return path, meta["bad"]
    print(f"generating {rows:,} rows ({bad_fraction:.0%} bad) into {path} ...", flush=True)
    started = time.perf_counter()
    bad = generate_orders_csv(path, rows, bad_fraction=bad_fraction, seed=seed)
    print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)
    with open(meta_path, "w") as f:
        json.dump({**wanted, "size": os.path.getsize(path), "bad": bad}, f)
    return path, bad


@contextlib.contextmanager
def timed(result: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """In a child: time the block; ``result`` gains ``wall_s`` and ``cpu_s`` (own + children's)."""
    import resource

    started = time.perf_counter()
    yield result
    result["wall_s"] = time.perf_counter() - started
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    result["cpu_s"] = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def report_result(result: dict[str, Any]) -> None:
    """In a child: hand ``result`` to :func:`run_child` in the parent."""
    print(RESULT + json.dumps(result), flush=True)


def run_child(argv: Sequence[str], *, cwd: str = ROOT, interval: float = 0.05) -> dict[str, Any]:
    """Run a child interpreter, sample its tree's RSS from a separate process, return the
    result it reported with ``peak_rss`` (bytes) and ``rss_samples`` added."""
    child = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, cwd=cwd)
    sampler = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--sample", str(child.pid), str(interval)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    stdout, _ = child.communicate()
    sampled, _ = sampler.communicate("")  # EOF on its stdin: it reports and exits
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv[1:3])}: the child failed with exit code {child.returncode}")
    line = next(s for s in stdout.splitlines() if s.startswith(RESULT))
    result: dict[str, Any] = json.loads(line[len(RESULT):])
    peak = json.loads(sampled)
    result["peak_rss"], result["rss_samples"] = peak["peak_rss"], peak["samples"]
    return result


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (what the docs quote)."""
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _sample(pid: int, interval: float) -> None:
    """Poll the tree of ``pid`` until it exits or stdin closes; print the peak RSS."""
    import select

    sys.path.insert(0, ROOT)
    from flowschema_core.timeline import tree_rss

    peak = samples = 0
    while True:
        total = tree_rss(pid)
        if not total:
            break  # the measured process is gone
        peak, samples = max(peak, total), samples + 1
        ready, _, _ = select.select([sys.stdin], [], [], interval)
        if ready and not sys.stdin.readline():
            break
    print(json.dumps({"peak_rss": peak, "samples": samples}), flush=True)


if __name__ == "__main__" and sys.argv[1:2] == ["--sample"]:
    _sample(int(sys.argv[2]), float(sys.argv[3]))
