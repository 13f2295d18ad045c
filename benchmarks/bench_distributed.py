"""RayExecutor distributed mode vs its single-driver mode: rows/s and driver CPU per record.

::

    python benchmarks/bench_distributed.py [--rows 300000] [--actors 2] [--cluster] [--csv PATH] [--parquet] [--json]

Both runs use the same Ray (started once: one local ``ray.init`` with ``num_cpus=actors``,
or with ``--cluster`` a cluster of ``actors`` nodes of one CPU each on loopback,
:class:`flowschema_ray.local_cluster.LocalCluster`, the driver on the head), the same pipeline
(orders CSV → Order → JSONL + DLQ), budget and chunk / range size. ``--parquet`` reads
the orders as a Parquet file of string columns in row groups of ``--row-group`` rows
(the CSV's ragged rows left out) instead: distributed mode's units are then row groups. Driver CPU is this
process's user + system time during the run (``resource.getrusage``: every thread of
the driver, Ray's own included). On one machine this shows the mechanism (what the driver
no longer does), not the scale: the actors share the same cores either way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import resource
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import flowschema_core as fs  # noqa: E402
from examples.orders_model import Order  # noqa: E402
from flowschema_ray import RayExecutor  # noqa: E402


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(name: str, distributed: bool, path: str, out_dir: str, actors: int, chunk: str) -> dict[str, object]:
    executor = RayExecutor(num_actors=actors, distributed=distributed)
    cpu0, t0 = _cpu(), time.perf_counter()
    report = fs.Pipeline(
        fs.ParquetSource(path) if path.endswith(".parquet") else fs.CSVSource(path), Order,
        fs.JSONLSink(os.path.join(out_dir, f"{name}.jsonl")), fs.JSONLSink(os.path.join(out_dir, f"{name}.errors.jsonl")),
        executor=executor, max_bytes_in_flight="64MB", chunk_bytes=chunk, sample_interval=60, run_id="bench",
    ).run()
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    assert report.balanced
    return {"mode": name, "rows": report.rows_read, "wall_s": round(wall, 2), "rows_per_s": round(report.rows_read / wall),
            "driver_cpu_s": round(cpu, 2), "driver_cpu_us_per_row": round(cpu / report.rows_read * 1e6, 2),
            "bytes_through_driver": report.bytes_through_driver, "driver_message_bytes": report.driver_message_bytes,
            "ranges": report.chunks}


def _to_parquet(csv_path: str, path: str, row_group: int) -> str:
    """The orders CSV as Parquet string columns (ragged rows, which pyarrow cannot read, left out)."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from examples.generate_orders import FIELDS

    table = pcsv.read_csv(csv_path, convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(FIELDS, "string")),
                          parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda row: "skip"))
    pq.write_table(table, path, row_group_size=row_group)
    return path


def compare(args: argparse.Namespace) -> list[dict[str, object]]:
    """Both modes in turn, twice, on one input; their outputs must be byte-equal."""
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = args.csv
        if csv_path is None:
            from examples.generate_orders import generate_orders_csv

            csv_path = os.path.join(tmp, "orders.csv")
            generate_orders_csv(csv_path, args.rows, seed=1)
        if args.parquet:
            csv_path = _to_parquet(csv_path, os.path.join(tmp, "orders.parquet"), args.row_group)
        results = [measure(name, dist, csv_path, tmp, args.actors, args.chunk_bytes)
                   for name, dist in (("single-driver", False), ("distributed", True), ("single-driver", False), ("distributed", True))]
        with open(os.path.join(tmp, "single-driver.jsonl"), "rb") as a, open(os.path.join(tmp, "distributed.jsonl"), "rb") as b:
            assert a.read() == b.read(), "the two modes wrote different outputs"
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--chunk-bytes", default="1MiB")
    parser.add_argument("--cluster", action="store_true", help="run on a local cluster of --actors nodes (one CPU each)")
    parser.add_argument("--csv", help="an orders CSV to use instead of a generated one")
    parser.add_argument("--parquet", action="store_true", help="read the orders from a Parquet file made from the CSV")
    parser.add_argument("--row-group", type=int, default=50_000, help="rows per row group of that Parquet file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if args.cluster:
        os.environ["RAY_AUTH_MODE"] = "token"  # read when ray is imported: the head node asks drivers for its token
    import ray

    with contextlib.ExitStack() as stack:
        if args.cluster:
            from flowschema_ray.local_cluster import LocalCluster

            cluster = stack.enter_context(LocalCluster(nodes=args.actors, cpus_per_node=1))
            ray.init(address=cluster.address, _node_ip_address="127.0.0.1", logging_level=logging.WARNING)
        else:
            ray.init(address="local", num_cpus=args.actors, include_dashboard=False, logging_level=logging.WARNING)
        stack.callback(ray.shutdown)
        results = compare(args)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'mode':<14} {'rows':>9} {'wall s':>8} {'rows/s':>9} {'driver CPU s':>13} {'µs/row':>7} {'bytes via driver':>17} {'messages B':>11}")
    for r in results:
        print(f"{r['mode']:<14} {r['rows']:>9,} {r['wall_s']:>8} {r['rows_per_s']:>9,} {r['driver_cpu_s']:>13} "
              f"{r['driver_cpu_us_per_row']:>7} {r['bytes_through_driver']:>17,} {r['driver_message_bytes']:>11,}")


if __name__ == "__main__":
    main()
