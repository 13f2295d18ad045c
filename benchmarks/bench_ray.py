"""RayExecutor vs MultiprocessingExecutor in steady state: rows/s, start-up, bytes in flight.

::

    python benchmarks/bench_ray.py [--rows 1000000] [--workers 2] [--csv PATH] [--json]

Both executors run the same pipeline (CSV → Order → JSONL + DLQ) within the same byte
budget. Start-up (process spawn / ``ray.init`` + actors building the model) is measured
separately from the run: each executor is started once with ``start()`` and reused by
the pipeline, so the rows/s figure is the steady state a long job sees. ``make bench``
(``bench_orders.py``) measures the other view: Ray with its actors' start-up inside the
run, each contender in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import flowschema_core as fs  # noqa: E402
from benchmarks import harness  # noqa: E402
from examples.orders_model import Order  # noqa: E402
from flowschema_core.worker import WorkerSpec  # noqa: E402


class _Started(fs.Executor):
    """Wraps an executor that was started beforehand, so the run excludes start-up."""

    def __init__(self, inner: fs.Executor) -> None:
        super().__init__()
        self.inner, self.parallelism, self.stats = inner, inner.parallelism, inner.stats

    def start(self, spec: WorkerSpec) -> None:
        pass

    def submit(self, blob: bytes):  # type: ignore[no-untyped-def]
        return self.inner.submit(blob)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass  # the benchmark shuts the real executor down after the run


def measure(name: str, executor: fs.Executor, csv_path: str, out_dir: str, budget: str, chunk: str) -> dict[str, object]:
    t0 = time.perf_counter()
    executor.start(WorkerSpec(Order, [], "jsonl"))
    startup = time.perf_counter() - t0
    try:
        report = fs.Pipeline(
            fs.CSVSource(csv_path), Order,
            fs.JSONLSink(os.path.join(out_dir, f"{name}.jsonl")), fs.JSONLSink(os.path.join(out_dir, f"{name}.errors.jsonl")),
            executor=_Started(executor), max_bytes_in_flight=budget, chunk_bytes=chunk,
        ).run()
    finally:
        t1 = time.perf_counter()
        executor.shutdown()
        teardown = time.perf_counter() - t1
    assert report.balanced, "accounting identity broken"
    return {
        "executor": name, "startup_s": round(startup, 2), "run_s": round(report.elapsed_s, 2), "shutdown_s": round(teardown, 2),
        "rows": report.rows_read, "rows_per_s": round(report.rows_per_s), "valid": report.rows_valid, "invalid": report.rows_invalid,
        "chunks": report.chunks, "budget_bytes": report.max_bytes_in_flight, "peak_bytes_in_flight": report.peak_bytes_in_flight,
        "peak_rss_mb": round(report.peak_rss_bytes / 2**20), "restarts": report.worker_restarts,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2, help="process workers and Ray actors")
    parser.add_argument("--csv", help="an existing orders CSV (default: generated once into build/bench)")
    parser.add_argument("--budget", default="64MB", help="max_bytes_in_flight for both runs")
    parser.add_argument("--chunk-bytes", default="1MiB")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    from flowschema_ray import RayExecutor

    with tempfile.TemporaryDirectory(prefix="fsbench") as tmp:
        csv_path = args.csv or harness.orders_csv(args.rows)[0]
        results = [
            measure("process", fs.MultiprocessingExecutor(workers=args.workers), csv_path, tmp, args.budget, args.chunk_bytes),
            measure("ray", RayExecutor(num_actors=args.workers), csv_path, tmp, args.budget, args.chunk_bytes),
        ]
    ratio = results[1]["rows_per_s"] / results[0]["rows_per_s"]  # type: ignore[operator]
    if args.json:
        print(json.dumps({"results": results, "ray_vs_process": round(ratio, 3)}, indent=2))
    else:
        print(f"{'executor':<9} {'start s':>8} {'run s':>7} {'rows/s':>9} {'peak in flight':>15} {'budget':>10} {'peak RSS MB':>12}")
        for r in results:
            print(f"{r['executor']:<9} {r['startup_s']:>8} {r['run_s']:>7} {r['rows_per_s']:>9,} "
                  f"{r['peak_bytes_in_flight']:>15,} {r['budget_bytes']:>10,} {r['peak_rss_mb']:>12}")
        print(f"ray / process rows/s: {ratio:.2f}x (target >= 0.9x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

