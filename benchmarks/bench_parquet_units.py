"""What an actor holds for one Parquet unit of distributed mode: RSS growth while it
processes one row group, by the group's (uncompressed) size.

    .venv/bin/python benchmarks/bench_parquet_units.py [--rows 1200000] [--groups 400000 1200000]

For each row-group size, the tests' messy items file (``tests.helpers.write_messy_parquet``:
id, name, price, note) with that many rows per group is written once (cached under
``--dir``); a fresh child process describes it and plans one unit per group
(:mod:`flowschema_core.range_parquet`), then runs ``range_work.process`` on the first unit
as an actor would and prints its peak RSS over the RSS before the call (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def one(path: str) -> None:
    """In this (fresh) process: the first unit of ``path``, processed, and what it cost."""
    import flowschema_core as fs
    from flowschema_core import range_io, range_parquet, range_work
    from flowschema_core.sinks.base import remove_path
    from flowschema_core.worker import ChunkProcessor, WorkerSpec
    from tests.integration.pipeline_models import Item

    desc = range_work.describe(fs.ParquetSource(path))
    unit = range_parquet.plan(desc, 1).ranges[0]
    processor = ChunkProcessor(WorkerSpec(Item))
    out_dir = tempfile.mkdtemp()
    staging = {key: range_io.make_staging(os.path.join(out_dir, f"{key}.jsonl")) for key in ("sink", "dlq")}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    out = range_work.process(processor, desc, vars(unit), staging, "bench", 0)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for directory in (*staging.values(), out_dir):
        remove_path(directory)
    print(f"{unit.records:>10,} {unit.size / 2**20:>18.1f} {out['seen'] / elapsed:>9,.0f} {before:>10.0f} {peak - before:>10.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_200_000)
    parser.add_argument("--groups", type=int, nargs="+", default=[100_000, 400_000, 1_200_000], help="rows per row group")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "flowschema-bench-parquet-units"))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child's part: the file to measure
    args = parser.parse_args()
    if args.one:
        one(args.one)
        return
    from tests.helpers import write_messy_parquet

    os.makedirs(args.dir, exist_ok=True)
    print(f"{'group rows':>10} {'group MiB (uncomp.)':>18} {'rows/s':>9} {'RSS MiB':>10} {'+MiB peak':>10}")
    for group in args.groups:
        path = os.path.join(args.dir, f"items-{args.rows}-{group}.parquet")
        if not os.path.exists(path):
            write_messy_parquet(path, args.rows, row_group_size=group)
        subprocess.run([sys.executable, __file__, "--one", path], check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
