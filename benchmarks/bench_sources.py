"""Peak memory of the Parquet and SQL sources: does it stay flat as the input grows?

    .venv/bin/python benchmarks/bench_sources.py                      # 200k and 2M rows
    .venv/bin/python benchmarks/bench_sources.py --small 20000 --large 200000   # quicker

For each source (a Parquet file, an SQLite table) and each size, a fresh child process
runs ``Pipeline(source → model → JSONLSink)`` with ``max_bytes_in_flight="64MB"``; a
separate sampler process (``benchmarks/harness.py``) samples the child's whole process
tree RSS every 50 ms and keeps the peak. The inputs are generated once, in batches, and cached under ``--dir``. The figure
that matters is the ratio peak(large) / peak(small): the target is ≤ 1.1 (flat memory).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import sys
import tempfile
from decimal import Decimal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import harness  # noqa: E402

BATCH = 50_000


def make_parquet(path: str, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.decimal128(12, 2)),
                        ("at", pa.timestamp("us", tz="UTC")), ("active", pa.bool_())])
    base = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    tmp = path + ".part"
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for start in range(0, rows, BATCH):
            ids = range(start, min(rows, start + BATCH))
            writer.write_table(pa.table({
                "id": pa.array(ids, pa.int64()),
                "name": pa.array([f"customer {i}" for i in ids]),
                "amount": pa.array([Decimal(i % 100_000) / 100 for i in ids], pa.decimal128(12, 2)),
                "at": pa.array([base + dt.timedelta(seconds=i) for i in ids], pa.timestamp("us", tz="UTC")),
                "active": pa.array([i % 3 != 0 for i in ids]),
            }, schema=schema), row_group_size=BATCH)
    os.replace(tmp, path)


def make_sqlite(path: str, rows: int) -> None:
    tmp = path + ".part"
    if os.path.exists(tmp):
        os.unlink(tmp)
    con = sqlite3.connect(tmp)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, amount TEXT, at TEXT, active INTEGER)")
    base = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    for start in range(0, rows, BATCH):
        con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)", (
            (i, f"customer {i}", str(Decimal(i % 100_000) / 100), (base + dt.timedelta(seconds=i)).isoformat(), i % 3 != 0)
            for i in range(start, min(rows, start + BATCH))
        ))
    con.commit()
    con.close()
    os.replace(tmp, path)


def child(kind: str, path: str, executor: str) -> None:
    """Run one pipeline (in the child process) and print its report as JSON."""
    from pydantic import AwareDatetime, BaseModel

    import flowschema_core as fs

    class Customer(BaseModel):
        id: int
        name: str
        amount: Decimal
        at: AwareDatetime
        active: bool

    source = fs.ParquetSource(path) if kind == "parquet" else fs.SQLSource(f"sqlite:///{path}", table="customers")
    out = tempfile.mkdtemp(prefix="flowschema-bench-")
    sink = fs.JSONLSink(os.path.join(out, "out.jsonl"))
    report = fs.Pipeline(source, Customer, sink, errors=fs.JSONLSink(os.path.join(out, "errors.jsonl")),
                         max_bytes_in_flight="64MB", executor=executor, sample_interval=60).run()
    for name in os.listdir(out):
        os.unlink(os.path.join(out, name))
    os.rmdir(out)
    harness.report_result({"rows": report.rows_read, "valid": report.rows_valid, "elapsed_s": report.elapsed_s,
                           "peak_bytes_in_flight": report.peak_bytes_in_flight})


def measure(kind: str, path: str, executor: str) -> dict:
    return harness.run_child([sys.executable, os.path.abspath(__file__), "--child", kind, path, "--executor", executor])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=200_000)
    parser.add_argument("--large", type=int, default=2_000_000)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "flowschema-bench-sources"))
    parser.add_argument("--executor", default="inline", help="inline (default) or process")
    parser.add_argument("--only", choices=["parquet", "sqlite"], help="measure one source only")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.executor)
        return
    os.makedirs(args.dir, exist_ok=True)
    kinds = [args.only] if args.only else ["parquet", "sqlite"]
    print(f"max_bytes_in_flight=64MB, executor={args.executor}, peak RSS of the child's process tree (sampled every 50 ms)")
    print(f"{'source':8} {'rows':>10} {'seconds':>8} {'rows/s':>9} {'peak RSS':>10}")
    for kind in kinds:
        peaks = {}
        for rows in (args.small, args.large):
            path = os.path.join(args.dir, f"{kind}-{rows}.{'parquet' if kind == 'parquet' else 'db'}")
            if not os.path.exists(path):
                (make_parquet if kind == "parquet" else make_sqlite)(path, rows)
            r = measure(kind, path, args.executor)
            assert r["rows"] == r["valid"] == rows, r
            peaks[rows] = r["peak_rss"]
            print(f"{kind:8} {rows:>10,} {r['elapsed_s']:>8.1f} {rows / r['elapsed_s']:>9,.0f} {r['peak_rss'] / 2**20:>8.1f} MB", flush=True)
        ratio = peaks[args.large] / peaks[args.small]
        verdict = "flat" if ratio <= 1.1 else "GROWS"
        print(f"{kind:8} peak RSS ratio {args.large:,}/{args.small:,} rows = {ratio:.3f} ({verdict}; target <= 1.1)", flush=True)


if __name__ == "__main__":
    main()
