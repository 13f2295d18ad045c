"""A hook whose records come out far larger than they went in, and a pipeline run as its
own process (so a test can SIGKILL its driver), for the result-budget tests.

usage: python -m tests.integration.result_budget_models CSV OUT_DIR CHECKPOINT_DIR
"""

from __future__ import annotations

import argparse

import flowschema_core as fs
from tests.integration.pipeline_models import Item

CHUNK_BYTES = "16KiB"
BUDGET = "1MiB"


class Expand(fs.Hook):
    """Gives each record a ``note`` ``times`` as long as the record as read, so that its
    valid row is about ``times`` larger than its input."""

    def __init__(self, times: int = 20) -> None:
        self.times = times

    def before_validate(self, record):
        size = sum(len(str(v)) for v in record.values())
        return {**record, "note": "~" * (self.times * size)}  # a new dict: the DLQ keeps the record as read


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("csv")
    parser.add_argument("out")
    parser.add_argument("checkpoint")
    args = parser.parse_args()
    report = fs.Pipeline(
        fs.CSVSource(args.csv), Item, fs.JSONLSink(f"{args.out}/out.jsonl"), fs.JSONLSink(f"{args.out}/errors.jsonl"),
        executor=fs.MultiprocessingExecutor(workers=2), chunk_bytes=CHUNK_BYTES, max_bytes_in_flight=BUDGET,
        checkpoint=args.checkpoint, checkpoint_interval=0, hooks=[Expand(20)],
    ).run()
    print("REPORT", report.to_json(indent=None), flush=True)


if __name__ == "__main__":
    main()
