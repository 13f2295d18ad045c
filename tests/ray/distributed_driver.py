"""A driver process for the distributed-mode signal and resume tests: joins the test
session's Ray (``--address``), runs an items CSV to JSONL + DLQ in distributed mode, prints
the report as JSON. Once its actors run, it writes their PIDs to ``--pids`` (the tests
wait for them to be gone), and from then on the records it has counted as settled to
``PIDS.rows`` (a test stops it once the run has settled some, not merely written parts).

    python -m tests.ray.distributed_driver IN.csv OUT_DIR --address GCS [--checkpoint DIR] [--slow S] [--single-driver]
"""

from __future__ import annotations

import argparse
import json
import os

import flowschema_core as fs
from flowschema_ray import RayExecutor
from tests.ray.ray_models import Item, Slow


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("out")
    parser.add_argument("--address", required=True)
    parser.add_argument("--checkpoint")
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--pids", required=True)
    parser.add_argument("--single-driver", action="store_true", help="distributed=False (its Ray starts inside the run)")
    args = parser.parse_args()
    executor = RayExecutor(address=args.address, num_actors=2, distributed=not args.single_driver, range_bytes="2KiB")

    def write(path: str, value: object) -> None:
        with open(path + ".tmp", "w") as f:
            json.dump(value, f)
        os.replace(path + ".tmp", path)

    def write_pids(snapshot: fs.ProgressSnapshot) -> None:
        pids = executor.worker_pids()
        if len(pids) == 2 and not os.path.exists(args.pids):
            write(args.pids, pids)
        if os.path.exists(args.pids):
            write(args.pids + ".rows", snapshot.rows_read)

    pipeline = fs.Pipeline(fs.CSVSource(args.source), Item, fs.JSONLSink(os.path.join(args.out, "out.jsonl")),
                           fs.JSONLSink(os.path.join(args.out, "out.errors.jsonl")), executor=executor, hooks=[Slow(args.slow)],
                           checkpoint=args.checkpoint, checkpoint_interval=0, progress=write_pids, sample_interval=0.05,
                           run_id="driver", chunk_bytes="2KiB")
    print(json.dumps(pipeline.run().to_dict()), flush=True)


if __name__ == "__main__":
    main()
