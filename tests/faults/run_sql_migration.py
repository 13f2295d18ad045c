"""A MariaDB → PostgreSQL migration as its own process, so a fault test can SIGKILL it.

usage: python -m tests.faults.run_sql_migration SOURCE_URL TARGET_URL OUT_DIR CHECKPOINT_DIR

Prints ``REPORT {json}`` at the end, with the source's reconnections and the sink's retries.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal

from pydantic import BaseModel, Field

import flowschema_core as fs


class Customer(BaseModel):
    id: int
    name: str = Field(min_length=1, max_length=60)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    balance: Decimal = Field(max_digits=12, decimal_places=2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("out")
    parser.add_argument("checkpoint")
    args = parser.parse_args()
    source = fs.SQLSource(args.source, table="legacy_customers", key="id", batch_rows=2_000)
    sink = fs.SQLSink(args.target, "customers", create=False, batch_rows=200, retry_s=60)
    report = fs.Pipeline(
        source, Customer, sink, fs.JSONLSink(f"{args.out}/errors.jsonl"),
        executor=fs.MultiprocessingExecutor(workers=2), chunk_bytes="64KiB", max_bytes_in_flight="512KB",
        checkpoint=args.checkpoint, checkpoint_interval=0.5,
    ).run()
    print("REPORT", json.dumps({**report.to_dict(), "timeline": [], "source_reconnects": source.reconnects, "sink_retries": sink.retries}),
          flush=True)


if __name__ == "__main__":
    main()
