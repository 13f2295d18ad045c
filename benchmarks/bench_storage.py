"""What reading from and writing to S3 costs a run, against the same run on local files.

    .venv/bin/python benchmarks/bench_storage.py                 # 200k rows
    .venv/bin/python benchmarks/bench_storage.py --rows 50000    # quicker

Starts the test suite's S3 API (moto in server mode on loopback, tests/s3_server.py),
writes an orders CSV of ``--rows`` rows (3% bad), uploads it, then times:

* the first request (the client's session and credentials: paid once per process), then
  the raw read of the object through ``storage.open_input`` (1 MiB reads) against the
  local file, in MB/s;
* the same pipeline (2 worker processes, JSONL sink and DLQ) local → local, S3 → local,
  local → S3 and S3 → S3, in rows/s, with the driver's peak RSS from the run report.

moto is a Python (Flask) server on the same two cores, so the S3 figures are a floor for
the mechanism (ranged reads, one part buffered, the upload on commit), not S3's speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import harness  # noqa: E402


def write_orders(path: str, rows: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,name,price,note\n")
        for i in range(1, rows + 1):
            price = f"-{i}.5" if i % 33 == 0 else f"{i % 1000}.25"
            f.write(f"{i},customer {i},{price},note {i % 17}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()

    import flowschema_core as fs
    from flowschema_core import storage
    from tests.integration.pipeline_models import Item
    from tests.s3_server import MotoServer

    server = MotoServer()
    endpoint = server.start()
    options = endpoint.storage_options()
    try:
        client = endpoint.client()
        client.create_bucket(Bucket="bench")  # type: ignore[attr-defined]
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "orders.csv")
            write_orders(local, args.rows)
            size = os.path.getsize(local)
            with open(local, "rb") as f:
                client.put_object(Bucket="bench", Key="orders.csv", Body=f.read())  # type: ignore[attr-defined]
            url = "s3://bench/orders.csv"

            started = time.perf_counter()
            storage.size(url, options)  # the client's first request (session, credentials): once per process, not per read
            print(f"first request to the S3 API: {time.perf_counter() - started:.2f} s")
            reads = []
            for name, opener in (("local file", lambda: open(local, "rb")), ("s3 (moto)", lambda: storage.open_input(url, options))):
                started = time.perf_counter()
                with opener() as f:
                    while f.read(1 << 20):
                        pass
                seconds = time.perf_counter() - started
                reads.append([name, f"{size / seconds / 1e6:.0f} MB/s"])
            print(f"raw read of {harness.mib(size)}:")
            print(harness.table(["input", "throughput"], reads))

            runs = []
            for source_at, sink_at in (("local", "local"), ("s3", "local"), ("local", "s3"), ("s3", "s3")):
                source = fs.CSVSource(url, storage_options=options) if source_at == "s3" else fs.CSVSource(local)
                where = f"s3://bench/out-{source_at}-{sink_at}" if sink_at == "s3" else os.path.join(tmp, f"out-{source_at}")
                opts = {"storage_options": options} if sink_at == "s3" else {}
                report = fs.Pipeline(source, Item, fs.JSONLSink(f"{where}.jsonl", **opts), fs.JSONLSink(f"{where}.errors.jsonl", **opts),
                                     executor=fs.MultiprocessingExecutor(workers=2), progress=False).run()
                runs.append([f"{source_at} → {sink_at}", f"{report.rows_per_s:,.0f}", f"{report.elapsed_s:.2f} s", harness.mib(report.peak_rss_bytes)])
            print(f"\npipeline, {args.rows:,} rows, 2 workers:")
            print(harness.table(["source → sink", "rows/s", "wall", "peak RSS (tree)"], runs))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
