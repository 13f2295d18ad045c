"""Validate an orders CSV on a Ray cluster: the driver script for ``ray job submit``.

::

    ray job submit --working-dir . --runtime-env cluster_configs/runtime_env.yaml -- \\
        python examples/ray_job.py --source data.csv --sink out.jsonl --errors errors.jsonl [--generate N]

    ray job submit (uploads the working dir) ─► job driver: this script, on the head node
        CSVSource ─► ByteLedger ─► RayExecutor (actors on any node) ─► sink + DLQ (written here)

When every node reaches the paths under the same name (a shared volume) or they are
``s3://`` URLs, RayExecutor runs in distributed mode (see docs/distributed.md): the actors
read their own byte ranges of the CSV and write their own parts; this driver only plans,
counts and commits. ``--storage-options '{"client_kwargs": {"endpoint_url": ...}}'`` (JSON)
reaches the store; credentials are best left to the nodes' environment or IAM role, since
a job's command line is shown by ``ray job list``.

Ray sets ``RAY_ADDRESS`` for a submitted job, so the executor joins that cluster
(``address="auto"``); run by hand without it, the script starts a private local Ray.
Paths are seen by the driver, i.e. on the head node: use absolute paths or shared
storage for files that must outlive the job. The run report is printed as JSON; the exit
status is non-zero when ``read == valid + invalid + filtered`` does not hold.
"""

from __future__ import annotations

import argparse
import os
import sys

# `python examples/ray_job.py` puts examples/ on sys.path; the repository root (the job's
# working dir) is where `examples` and the flowschema packages live.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flowschema_core as fs
from examples.orders_model import Order
from flowschema_core import registry, storage
from flowschema_ray import RayExecutor


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="orders CSV to validate")
    parser.add_argument("--sink", required=True, help="where valid rows go (.jsonl or .csv)")
    parser.add_argument("--errors", required=True, help="the dead-letter queue (.jsonl)")
    parser.add_argument("--generate", type=int, metavar="N", help="first write N generated orders to --source")
    parser.add_argument("--address", default=None, help='Ray address; default "auto" when RAY_ADDRESS is set, else a local Ray')
    parser.add_argument("--num-actors", type=int, default=2)
    parser.add_argument("--max-bytes-in-flight", default="256MB")
    parser.add_argument("--chunk-bytes", default="1MiB")
    parser.add_argument("--storage-options", default=None, help="fsspec storage_options (JSON) for s3:// and other URLs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.generate is not None:
        from examples.generate_orders import generate_orders_csv

        generate_orders_csv(args.source, args.generate)
    options = storage.options(args.storage_options)
    address = args.address or ("auto" if os.environ.get("RAY_ADDRESS") else None)
    report = fs.Pipeline(
        source=fs.CSVSource(args.source, storage_options=options),
        model=Order,
        sink=registry.sink_for(args.sink, storage_options=options),
        errors=fs.JSONLSink(args.errors, storage_options=options),
        executor=RayExecutor(address=address, num_actors=args.num_actors),
        max_bytes_in_flight=args.max_bytes_in_flight,
        chunk_bytes=args.chunk_bytes,
    ).run()
    print(report.to_json())
    if not report.balanced:
        print(
            f"accounting identity broken: read {report.rows_read} != valid {report.rows_valid} + "
            f"invalid {report.rows_invalid} + filtered {report.rows_filtered}",
            file=sys.stderr,
        )
        return 1
    return 2 if report.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
