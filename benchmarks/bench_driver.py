"""What one driver costs per record: the driver process's own CPU over ``Pipeline.run``
(workers excluded), on orders CSVs with 3% and 30% bad rows, process executor.

``python benchmarks/bench_driver.py [--rows 200000] [--workers 2]`` (generates the inputs
in build/bench once). The driver's µs/record bound how many workers one driver can feed:
a worker spends a few µs of CPU per record, so a driver at D µs/record saturates at about
(worker µs / D) workers. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import flowschema_core as fs  # noqa: E402
from examples.orders_model import Order  # noqa: E402


def _input(rows: int, bad: float) -> str:
    path = os.path.join(ROOT, "build", "bench", f"orders-{rows}-{round(bad * 100)}pct.csv")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        subprocess.run([sys.executable, os.path.join(ROOT, "examples", "generate_orders.py"), "--rows", str(rows), "--bad-fraction", str(bad), path],
                       check=True, stdout=subprocess.DEVNULL)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    out = os.path.join(ROOT, "build", "bench")
    for bad in (0.03, 0.30):
        src = _input(args.rows, bad)
        cpu, wall = time.process_time(), time.perf_counter()
        report = fs.Pipeline(fs.CSVSource(src), Order, fs.JSONLSink(os.path.join(out, "driver.jsonl")),
                             fs.JSONLSink(os.path.join(out, "driver.errors.jsonl")), executor=fs.MultiprocessingExecutor(args.workers)).run()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"{bad:.0%} bad: {report.rows_read:,} records ({report.rows_invalid:,} invalid), driver CPU {cpu / report.rows_read * 1e6:.2f} µs/record, "
              f"{report.rows_read / wall:,.0f} rows/s with {args.workers} workers")


if __name__ == "__main__":
    main()
