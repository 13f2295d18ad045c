"""Distributed mode with S3 in and out, against the single-driver mode: rows/s, driver CPU.

::

    .venv/bin/python benchmarks/bench_distributed_s3.py [--rows 200000] [--actors 2] [--rounds 2]

Starts the test suite's S3 API (moto in server mode on loopback, tests/s3_server.py) and
one local Ray (``num_cpus=actors``), uploads an orders CSV of ``--rows`` rows, then runs
the same pipeline (``s3://`` CSV → Order → ``s3://`` JSONL sink + DLQ, 1 MiB chunks /
ranges) with ``RayExecutor(distributed=False)`` and ``distributed=True`` in turn, and
checks that the two sinks hold the same bytes. Driver CPU is this process's user + system
time during the run (every thread, Ray's own included). Both runs start their actors
(in distributed mode each actor also pays its S3 client's first request, about a second).
moto is a Python server on the same cores: a floor for the mechanism, not S3's speed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import ray

    import flowschema_core as fs
    from examples.generate_orders import generate_orders_csv
    from examples.orders_model import Order
    from flowschema_ray import RayExecutor
    from tests.s3_server import MotoServer, get, pending_uploads, put

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=args.actors, include_dashboard=False, object_store_memory=200 << 20, logging_level=logging.WARNING)
    server = MotoServer()
    endpoint = server.start()
    try:
        endpoint.client().create_bucket(Bucket="bench-distributed")  # type: ignore[attr-defined]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "orders.csv")
            generate_orders_csv(path, args.rows, seed=1)
            with open(path, "rb") as f:
                url = put(endpoint, "bench-distributed", "orders.csv", f.read())
        options = endpoint.storage_options()
        for round_ in range(args.rounds):
            for mode, distributed in (("single-driver", False), ("distributed", True)):
                sink = fs.JSONLSink(f"s3://bench-distributed/{mode}.jsonl", storage_options=options)
                errors = fs.JSONLSink(f"s3://bench-distributed/{mode}.errors.jsonl", storage_options=options)
                cpu0, t0 = _cpu(), time.perf_counter()
                report = fs.Pipeline(fs.CSVSource(url, storage_options=options), Order, sink, errors,
                                     executor=RayExecutor(num_actors=args.actors, distributed=distributed), chunk_bytes="1MiB").run()
                elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
                print(json.dumps({"mode": mode, "round": round_ + 1, "rows": report.rows_read, "rows_per_s": round(report.rows_read / elapsed),
                                  "driver_cpu_s": round(cpu, 2), "driver_cpu_us_per_row": round(cpu / report.rows_read * 1e6, 2),
                                  "bytes_through_driver": report.bytes_through_driver, "driver_message_bytes": report.driver_message_bytes,
                                  "commit": [note for note in report.notes if "multipart upload" in note]}), flush=True)
        same = get(endpoint, "bench-distributed", "single-driver.jsonl") == get(endpoint, "bench-distributed", "distributed.jsonl")
        print(f"sinks byte-equal: {same}; pending uploads: {pending_uploads(endpoint, 'bench-distributed')}")
    finally:
        server.stop()
        ray.shutdown()


if __name__ == "__main__":
    main()
