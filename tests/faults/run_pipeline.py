"""A pipeline run as its own process, so fault tests can SIGKILL the driver.

usage: python -m tests.faults.run_pipeline DATA_DIR OUT_DIR [--checkpoint DIR] [--executor process]
"""

from __future__ import annotations

import argparse

import flowschema_core as fs
from tests.integration.pipeline_models import Item, Slow


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--checkpoint")
    parser.add_argument("--executor", default="process")
    parser.add_argument("--sleep", type=float, default=0.0001)
    args = parser.parse_args()
    executor = fs.MultiprocessingExecutor(workers=2) if args.executor == "process" else args.executor
    report = fs.Pipeline(
        fs.CSVSource(f"{args.data}/items.csv"), Item,
        fs.JSONLSink(f"{args.out}/out.jsonl"), fs.JSONLSink(f"{args.out}/errors.jsonl"),
        executor=executor, chunk_bytes="8KiB", checkpoint=args.checkpoint, checkpoint_interval=0.05,
        hooks=[Slow(args.sleep)],
    ).run()
    print("REPORT", report.to_json(indent=None), flush=True)


if __name__ == "__main__":
    main()
